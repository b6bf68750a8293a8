"""EmbeddingCache.delete_every_model: an image's embeddings under every model folder go, others stay."""

from __future__ import annotations

import numpy as np
import pytest

from inference.embeddings import EmbeddingCache
from inference.protocols import ImageEmbedding

A, B = "ab" * 32, "cd" * 32


def embedding() -> ImageEmbedding:
    return ImageEmbedding(features=np.ones((1, 2, 2, 2), np.float32), original_size=(4, 4), input_size=(4, 4))


def test_it_removes_the_images_embeddings_of_every_model_and_keeps_the_others(tmp_path):
    cache = EmbeddingCache(tmp_path)
    for model in ("vit_b", "some/odd model name"):
        cache.put(A, model, embedding())
        cache.put(B, model, embedding())
    failure = cache.path(A, "vit_b").with_suffix(".error.json")
    failure.write_text("{}")

    assert cache.delete_every_model([A.upper()]) == 3  # two .npz and the failure record

    assert not cache.has(A, "vit_b") and not cache.has(A, "some/odd model name") and not failure.exists()
    assert cache.has(B, "vit_b") and cache.has(B, "some/odd model name")


def test_nothing_to_delete_is_zero_and_a_bad_key_is_refused_before_any_delete(tmp_path):
    cache = EmbeddingCache(tmp_path / "missing")
    assert cache.delete_every_model([A]) == 0
    assert cache.delete_every_model([]) == 0
    cache = EmbeddingCache(tmp_path)
    cache.put(A, "vit_b", embedding())
    with pytest.raises(ValueError, match="not a hex digest"):
        cache.delete_every_model([A, "../../etc"])
    assert cache.has(A, "vit_b")
