"""The embedding cache: round trips, float16 fidelity, corrupt files, safe paths."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image
from skimage import data

from inference.embeddings import EmbeddingCache
from inference.masks import mask_iou
from inference.models import tiny_sam
from inference.protocols import ImageEmbedding

SHA = hashlib.sha256(b"an image").hexdigest()
BOXES = [(40, 30, 200, 160), (250, 100, 300, 250), (420, 10, 90, 60)]


def random_embedding(seed: int = 0) -> ImageEmbedding:
    features = np.random.default_rng(seed).normal(size=(1, 32, 16, 16)).astype(np.float32)
    return ImageEmbedding(features=features, original_size=(400, 600), input_size=(171, 256))


@pytest.fixture
def cache(tmp_path) -> EmbeddingCache:
    return EmbeddingCache(tmp_path / "embeddings")


def test_put_then_get_round_trips(cache):
    embedding = random_embedding()

    assert not cache.has(SHA, "vit_b")
    assert cache.get(SHA, "vit_b") is None
    cache.put(SHA, "vit_b", embedding)

    assert cache.has(SHA, "vit_b")
    cached = cache.get(SHA, "vit_b")
    assert cached.features.dtype == np.float32
    assert cached.features.shape == embedding.features.shape
    np.testing.assert_allclose(cached.features, embedding.features, rtol=1e-3, atol=1e-3)
    assert cached.original_size == (400, 600)
    assert cached.input_size == (171, 256)


def test_float16_storage_halves_the_file(tmp_path):
    embedding = random_embedding()
    half = EmbeddingCache(tmp_path / "half").put(SHA, "vit_b", embedding)
    full_cache = EmbeddingCache(tmp_path / "full", dtype="float32")
    full = full_cache.put(SHA, "vit_b", embedding)

    assert half.stat().st_size < 0.6 * full.stat().st_size
    assert np.array_equal(full_cache.get(SHA, "vit_b").features, embedding.features)


def test_models_do_not_share_entries(cache):
    cache.put(SHA, "vit_b", random_embedding(1))

    assert cache.get(SHA, "vit_h") is None
    assert cache.get(SHA.replace(SHA[0], "0" if SHA[0] != "0" else "1", 1), "vit_b") is None


def test_put_leaves_no_temporary_files(cache):
    path = cache.put(SHA, "vit_b", random_embedding())

    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_corrupt_file_counts_as_missing_and_is_removed(cache):
    path = cache.put(SHA, "vit_b", random_embedding())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a truncated write

    assert cache.get(SHA, "vit_b") is None
    assert not path.exists()


def test_garbage_file_counts_as_missing(cache):
    path = cache.path(SHA, "vit_b")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")

    assert cache.get(SHA, "vit_b") is None
    assert not path.exists()


def test_model_names_become_safe_distinct_folders(cache):
    odd = cache.path(SHA, "../facebook/sam vit:b")
    other = cache.path(SHA, "facebook_sam_vit_b")

    assert cache.folder in odd.parents
    assert odd != other
    assert cache.path(SHA, "vit_b").parent.parent.name == "vit_b"


def test_keys_must_be_hex_digests(cache):
    with pytest.raises(ValueError, match="hex digest"):
        cache.path("../../etc/passwd", "vit_b")


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_masks_from_a_cached_float16_embedding_match_fresh_ones(tiny_sam_dir, cache):
    segmenter = tiny_sam.load_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")
    fresh = segmenter.embed(Image.fromarray(data.coffee()))
    cache.put(SHA, "tiny", fresh)
    cached = cache.get(SHA, "tiny")

    from_fresh = segmenter.masks_for_boxes(fresh, BOXES)
    from_cache = segmenter.masks_for_boxes(cached, BOXES)
    click_fresh = segmenter.mask_from_prompts(fresh, points=[(300, 200)], labels=[1])
    click_cache = segmenter.mask_from_prompts(cached, points=[(300, 200)], labels=[1])

    for a, b in zip(from_fresh, from_cache, strict=True):
        assert a.mask.any()
        assert mask_iou(a.mask, b.mask) >= 0.99
    assert mask_iou(click_fresh.mask, click_cache.mask) >= 0.99
