"""The Grounding DINO detector, on the tiny random model built once per session (conftest.py)."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from inference import device as device_module
from inference.errors import InferenceError, ModelLoadError
from inference.models.grounding_dino import GroundingDinoDetector, nms_per_class
from inference.models.tiny_gdino import build_tiny_grounding_dino
from inference.prompts import ClassPrompt, build_caption
from inference.protocols import Detection

NAMES = ["cat", "coffee cup"]
PROMPTS = [ClassPrompt(name, name) for name in NAMES]


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(skimage.data.chelsea())  # 451 x 300


@pytest.fixture(scope="module")
def everything(tiny_detector, chelsea) -> list[Detection]:
    """All joint-mode detections on chelsea: no score floor, no NMS."""
    return tiny_detector.detect(
        [chelsea], PROMPTS, box_threshold=0.35, text_threshold=0.25, keep_threshold=0.0, nms_iou=1.0
    )[0]


def xyxy(detection: Detection) -> tuple[float, float, float, float]:
    x, y, w, h = detection.box
    return (x, y, x + w, y + h)


def iou(a: Detection, b: Detection) -> float:
    ax1, ay1, ax2, ay2 = xyxy(a)
    bx1, by1, bx2, by2 = xyxy(b)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    return inter / (a.box[2] * a.box[3] + b.box[2] * b.box[3] - inter)


def assert_same_detections(got: list[Detection], expected: list[Detection], tol: float) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert (g.class_index, g.phrase) == (e.class_index, e.phrase)
        assert g.score == pytest.approx(e.score, abs=tol)
        assert g.box == pytest.approx(e.box, abs=tol)


def count_forwards(monkeypatch, detector) -> list[int]:
    """Record the batch size of every forward pass of the detector's model."""
    sizes: list[int] = []
    forward = detector.model.forward

    def counting(*args, **kwargs):
        sizes.append(int(kwargs["pixel_values"].shape[0]))
        return forward(*args, **kwargs)

    monkeypatch.setattr(detector.model, "forward", counting)
    return sizes


# ------------------------------------------------------------------ device


def test_pick_device_honours_the_preference(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_module.pick_device("auto") == "cpu"
    assert device_module.pick_device("cpu") == "cpu"
    with pytest.raises(InferenceError, match="CUDA is not available"):
        device_module.pick_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        device_module.pick_device("tpu")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_module.pick_device("auto") == "cuda"
    assert device_module.pick_device("cuda:1") == "cuda:1"
    assert device_module.pick_device("cpu") == "cpu"


def fake_cuda(monkeypatch, capabilities: dict[int, tuple[int, int]], current: int = 0) -> None:
    """Pretend CUDA devices with these compute capabilities exist (index → (major, minor))."""

    def capability(device=None):
        index = device.index if isinstance(device, torch.device) else device
        return capabilities[current if index is None else int(index)]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: capabilities[current][0] >= 8)


def test_pick_dtype_is_fp32_unless_asked(monkeypatch):
    fake_cuda(monkeypatch, {0: (9, 0)})
    assert device_module.pick_dtype("cpu", "fp32") == torch.float32
    assert device_module.pick_dtype("cuda", "fp32") == torch.float32
    assert device_module.pick_dtype("cpu", "auto") == torch.float32
    assert device_module.pick_dtype("cpu", "bf16") == torch.bfloat16  # honoured on the CPU
    with pytest.raises(InferenceError, match="fp16 runs on CUDA only"):
        device_module.pick_dtype("cpu", "fp16")
    with pytest.raises(ValueError, match="unknown dtype"):
        device_module.pick_dtype("cpu", "int8")


def test_pick_dtype_looks_at_the_device_asked_for_not_the_current_one(monkeypatch):
    # Current device 0 is an Ampere (bf16); device 1 is a Turing (no bf16).
    fake_cuda(monkeypatch, {0: (8, 0), 1: (7, 5)}, current=0)

    assert device_module.pick_dtype("cuda:0", "auto") == torch.bfloat16
    assert device_module.pick_dtype("cuda:1", "auto") == torch.float16
    assert device_module.pick_dtype("cuda", "auto") == torch.bfloat16  # "cuda" is the current one
    assert device_module.pick_dtype("cuda:0", "bf16") == torch.bfloat16
    with pytest.raises(InferenceError, match=r"cuda:1 .*no native bfloat16"):
        device_module.pick_dtype("cuda:1", "bf16")
    assert device_module.pick_dtype("cuda:1", "fp16") == torch.float16

    fake_cuda(monkeypatch, {0: (7, 5), 1: (8, 6)}, current=0)  # now the other way round
    assert device_module.pick_dtype("cuda:1", "bf16") == torch.bfloat16
    assert device_module.pick_dtype("cuda", "auto") == torch.float16


# ------------------------------------------------------------------ the tiny model


def test_the_tiny_model_is_small_seeded_and_loads_offline(tiny_detector_dir, tmp_path):
    from safetensors.numpy import load_file

    size = sum(f.stat().st_size for f in tiny_detector_dir.iterdir())
    assert size < 20 * 2**20
    first = load_file(tiny_detector_dir / "model.safetensors")
    same = load_file(build_tiny_grounding_dino(tmp_path / "again", seed=0) / "model.safetensors")
    other = load_file(build_tiny_grounding_dino(tmp_path / "other", seed=1) / "model.safetensors")

    assert first.keys() == same.keys()
    assert all(np.array_equal(first[k], same[k]) for k in first)
    assert not all(np.array_equal(first[k], other[k]) for k in first)


def test_the_tiny_tokenizer_offsets_index_the_caption(tiny_detector):
    caption = build_caption(["cat", "coffee cup", "xyz"])
    encoding = tiny_detector.processor.tokenizer(caption.text, return_offsets_mapping=True)
    tokens = tiny_detector.processor.tokenizer.convert_ids_to_tokens(encoding["input_ids"])

    assert tokens == ["[CLS]", "cat", ".", "coffee", "cup", ".", "x", "##y", "##z", ".", "[SEP]"]
    # The ids transformers' Grounding DINO hard-codes as phrase delimiters: [CLS] [SEP] . ?
    assert tiny_detector.processor.tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", ".", "?"]) == [
        101,
        102,
        1012,
        1029,
    ]
    pieces = [caption.text[a:b] for a, b in encoding["offset_mapping"]]
    assert pieces == ["", "cat", ".", "coffee", "cup", ".", "x", "y", "z", ".", ""]


def test_the_tiny_model_gives_some_detections(everything, chelsea):
    assert len(everything) >= 5
    assert {d.class_index for d in everything} <= {0, 1}
    assert all(0.0 < d.score <= 1.0 for d in everything)
    assert [d.score for d in everything] == sorted((d.score for d in everything), reverse=True)


# ------------------------------------------------------------------ parity with transformers


def test_per_class_mode_matches_the_transformers_pipeline(tiny_detector, chelsea):
    from transformers import pipeline

    detector = pipeline(
        "zero-shot-object-detection",
        model=tiny_detector.model,
        tokenizer=tiny_detector.processor.tokenizer,
        image_processor=tiny_detector.processor.image_processor,
        device="cpu",
    )
    # The pipeline rounds its boxes to whole pixels (int()); take its float boxes instead.
    corners = ("xmin", "ymin", "xmax", "ymax")
    detector._get_bounding_box = lambda box: dict(zip(corners, box.tolist(), strict=True))
    # In transformers 5 the pipeline runs one forward per candidate label and tokenises the label
    # as it is given, with no " ." appended: give it the caption our per-class mode builds.
    expected = detector(chelsea, candidate_labels=[f"{name} ." for name in NAMES], threshold=0.5)
    got = tiny_detector.detect(
        [chelsea],
        PROMPTS,
        box_threshold=0.5,
        text_threshold=0.0,  # the pipeline has no text threshold: every prompt token counts
        keep_threshold=0.5,
        prompt_mode="per_class",
        nms_iou=1.0,
    )[0]

    assert len(expected) >= 5
    assert all(abs(e["score"] - 0.5) > 1e-6 for e in expected)  # the pipeline keeps score > 0.5
    width, height = chelsea.size
    unmatched = list(got)
    for e in expected:
        box = e["box"]
        reference = (
            min(max(box["xmin"], 0), width),
            min(max(box["ymin"], 0), height),
            min(max(box["xmax"], 0), width),
            min(max(box["ymax"], 0), height),
        )
        match = next(
            d
            for d in unmatched
            if NAMES[d.class_index] + " ." == e["label"]
            and abs(d.score - e["score"]) <= 1e-5
            and np.allclose(xyxy(d), reference, atol=1e-3, rtol=0)
        )
        unmatched.remove(match)
    assert unmatched == []


def test_joint_mode_matches_the_processor_post_processing(tiny_detector, chelsea):
    processor, model = tiny_detector.processor, tiny_detector.model
    inputs = processor(images=chelsea, text="cat . coffee cup .", return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs)
    width, height = chelsea.size
    reference = processor.post_process_grounded_object_detection(
        outputs, inputs["input_ids"], threshold=0.5, text_threshold=0.3, target_sizes=[(height, width)]
    )[0]
    got = tiny_detector.detect(
        [chelsea], PROMPTS, box_threshold=0.5, text_threshold=0.3, keep_threshold=0.5, nms_iou=1.0
    )[0]

    class_words = {"cat", "coffee", "cup"}
    expected = 0
    unmatched = list(got)
    for score, box, label in zip(
        reference["scores"].tolist(), reference["boxes"].tolist(), reference["text_labels"], strict=True
    ):
        words = set(label.replace(".", " ").split()) & class_words  # decoded as "cat. coffee cup."
        if not words:  # only [SEP] / "." fired: no class, which the detector drops
            continue
        expected += 1
        clipped = np.clip(box, 0, [width, height, width, height])
        match = next(
            d
            for d in unmatched
            if abs(d.score - score) <= 1e-5 and np.allclose(xyxy(d), clipped, atol=1e-3, rtol=0)
        )
        assert set(match.phrase.split()) <= words
        assert set(match.phrase.split()) <= set(NAMES[match.class_index].split())
        unmatched.remove(match)
    assert expected >= 5
    assert unmatched == []


# ------------------------------------------------------------------ detect


def test_keep_threshold_is_the_only_score_filter(tiny_detector, chelsea, everything):
    floor = float(np.median([d.score for d in everything]))
    kept = tiny_detector.detect(
        [chelsea], PROMPTS, box_threshold=0.95, text_threshold=0.25, keep_threshold=floor, nms_iou=1.0
    )[0]

    assert kept == [d for d in everything if d.score >= floor]
    assert 0 < len(kept) < len(everything)
    assert any(d.score < 0.95 for d in kept)  # box_threshold filters nothing: the review page does


def test_nms_helper_removes_an_overlapping_lower_box_of_the_same_class_only():
    boxes = np.array(
        [
            [10, 10, 50, 50],  # 0: cat, best
            [12, 12, 52, 52],  # 1: cat, overlaps 0 (IoU ~0.82): suppressed
            [11, 11, 51, 51],  # 2: cup, overlaps 0 but another class: kept
            [100, 100, 140, 140],  # 3: cat, elsewhere: kept
            [30, 10, 70, 50],  # 4: cat, IoU 1/3 with 0: kept at 0.5
        ],
        dtype=float,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    classes = np.array([0, 0, 1, 0, 0])

    assert nms_per_class(boxes, scores, classes, 0.5).tolist() == [0, 2, 3, 4]
    assert nms_per_class(boxes, scores, classes, 0.3).tolist() == [0, 2, 3]
    assert nms_per_class(boxes, scores, classes, 1.0).tolist() == [0, 1, 2, 3, 4]
    assert nms_per_class(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).tolist() == []


def test_detect_suppresses_overlaps_within_a_class(tiny_detector, chelsea, everything):
    suppressed = tiny_detector.detect(
        [chelsea], PROMPTS, box_threshold=0.35, text_threshold=0.25, keep_threshold=0.0, nms_iou=0.3
    )[0]

    assert set(suppressed) < set(everything)
    for i, a in enumerate(suppressed):
        for b in suppressed[i + 1 :]:
            assert a.class_index != b.class_index or iou(a, b) <= 0.3
    for dropped in set(everything) - set(suppressed):
        assert any(
            k.class_index == dropped.class_index and k.score >= dropped.score and iou(k, dropped) > 0.3
            for k in suppressed
        )


def test_max_instances_keeps_only_the_best_of_that_class(tiny_detector, chelsea, everything):
    prompts = [ClassPrompt("cat", "cat", max_instances=1), ClassPrompt("coffee cup", "coffee cup")]
    got = tiny_detector.detect(
        [chelsea], prompts, box_threshold=0.35, text_threshold=0.25, keep_threshold=0.0, nms_iou=1.0
    )[0]

    cats = [d for d in everything if d.class_index == 0]
    assert len(cats) > 1
    assert [d for d in got if d.class_index == 0] == cats[:1]
    assert [d for d in got if d.class_index == 1] == [d for d in everything if d.class_index == 1]


def test_boxes_are_clipped_inside_the_image(everything, chelsea):
    width, height = chelsea.size
    for d in everything:
        x, y, w, h = d.box
        assert w > 0 and h > 0
        assert x >= 0 and y >= 0 and x + w <= width + 1e-9 and y + h <= height + 1e-9
    touching = [d for d in everything if d.box[0] == 0 or d.box[1] == 0 or d.box[1] + d.box[3] == height]
    assert touching  # some random boxes stick out of the image and were cut at its edge


def test_a_batch_of_different_sizes_gives_the_same_detections_as_one_by_one(
    tiny_detector, chelsea, monkeypatch
):
    images = [
        chelsea,  # 451 x 300 → processed 240 x 160
        Image.fromarray(skimage.data.astronaut()).resize((200, 300)),  # → 160 x 240
        chelsea.resize((300, 200)),  # same processed size as chelsea: batched with it
    ]
    options = {"box_threshold": 0.35, "text_threshold": 0.25, "keep_threshold": 0.3}
    one_by_one = [tiny_detector.detect([image], PROMPTS, **options)[0] for image in images]
    forwards = count_forwards(monkeypatch, tiny_detector)
    batched = tiny_detector.detect(images, PROMPTS, **options)

    assert sorted(forwards) == [1, 2]  # padding changes Swin's output: sizes are not mixed
    for got, expected in zip(batched, one_by_one, strict=True):
        assert got
        assert_same_detections(got, expected, tol=1e-4)


def test_joint_and_per_class_modes_both_run(tiny_detector, chelsea, monkeypatch):
    options = {"box_threshold": 0.35, "text_threshold": 0.25, "keep_threshold": 0.3}
    forwards = count_forwards(monkeypatch, tiny_detector)
    joint = tiny_detector.detect([chelsea], PROMPTS, prompt_mode="joint", **options)[0]
    assert len(forwards) == 1
    per_class = tiny_detector.detect([chelsea], PROMPTS, prompt_mode="per_class", **options)[0]
    assert len(forwards) == 3

    for found in (joint, per_class):
        assert found and all(isinstance(d, Detection) for d in found)
        assert {d.class_index for d in found} <= {0, 1}
        assert all(set(d.phrase.split()) <= set(NAMES[d.class_index].split()) for d in found)
    assert {d.class_index for d in per_class} == {0, 1}


def test_joint_mode_splits_a_caption_longer_than_the_text_limit(tiny_detector, chelsea, monkeypatch):
    prompts = [ClassPrompt(name, name) for name in ["cat", "dog", "coffee cup", "mug"]]
    monkeypatch.setattr(tiny_detector, "max_text_len", 8)  # [CLS] cat . dog . coffee cup . [SEP] is 9
    forwards = count_forwards(monkeypatch, tiny_detector)
    found = tiny_detector.detect(
        [chelsea], prompts, box_threshold=0.35, text_threshold=0.25, keep_threshold=0.3
    )[0]

    assert len(forwards) == 2
    assert {d.class_index for d in found} & {0, 1} and {d.class_index for d in found} & {2, 3}
    monkeypatch.setattr(tiny_detector, "max_text_len", 4)  # [CLS] coffee cup . [SEP] is 5
    with pytest.raises(InferenceError, match="at most 4"):
        tiny_detector.detect([chelsea], prompts, box_threshold=0.3, text_threshold=0.2, keep_threshold=0.1)


def test_a_grey_image_is_read_as_rgb(tiny_detector, chelsea):
    grey = chelsea.convert("L")
    options = {"box_threshold": 0.35, "text_threshold": 0.25, "keep_threshold": 0.3}

    found = tiny_detector.detect([grey], PROMPTS, **options)[0]
    assert found
    assert found == tiny_detector.detect([grey.convert("RGB")], PROMPTS, **options)[0]


def test_empty_inputs_and_bad_arguments(tiny_detector, chelsea):
    options = {"box_threshold": 0.35, "text_threshold": 0.25, "keep_threshold": 0.1}
    assert tiny_detector.detect([], PROMPTS, **options) == []
    assert tiny_detector.detect([chelsea, chelsea], [], **options) == [[], []]
    with pytest.raises(ValueError, match="keep_threshold"):
        tiny_detector.detect([chelsea], PROMPTS, box_threshold=0.3, text_threshold=0.2, keep_threshold=1.5)
    with pytest.raises(ValueError, match="prompt_mode"):
        tiny_detector.detect([chelsea], PROMPTS, prompt_mode="both", **options)
    with pytest.raises(TypeError):
        tiny_detector.detect([np.zeros((4, 4, 3))], PROMPTS, **options)


# ------------------------------------------------------------------ loading


@pytest.fixture
def network_calls(monkeypatch) -> list[str]:
    """Hub offline, and every attempt to open a connection recorded (and refused)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    calls: list[str] = []

    def refuse(*args, **kwargs):
        calls.append(repr(args[:2]))
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return calls


def test_load_of_a_missing_folder_names_it_and_says_how_to_get_weights(tmp_path, network_calls):
    missing = tmp_path / "weights" / "grounding-dino-tiny"

    with pytest.raises(ModelLoadError) as error:
        GroundingDinoDetector.load(str(missing), device="cpu")

    message = str(error.value)
    assert str(missing) in message
    assert f"hf download IDEA-Research/grounding-dino-tiny --local-dir {missing}" in message
    assert "Real model weights" in message
    assert network_calls == []


def test_load_of_an_unknown_hub_id_offline_says_how_to_get_weights(network_calls):
    with pytest.raises(ModelLoadError) as error:
        GroundingDinoDetector.load("no-such-org/no-such-detector", device="cpu")

    message = str(error.value)
    assert "'no-such-org/no-such-detector'" in message
    assert "hf download no-such-org/no-such-detector --local-dir DIR" in message
    assert "Real model weights" in message
    assert network_calls == []


def test_load_of_a_folder_without_a_checkpoint_names_the_folder(tmp_path, network_calls):
    empty = tmp_path / "empty"
    empty.mkdir()
    not_a_folder = tmp_path / "model.safetensors"
    not_a_folder.write_bytes(b"junk")

    with pytest.raises(ModelLoadError, match=r"config\.json") as error:
        GroundingDinoDetector.load(empty, device="cpu")
    assert str(empty) in str(error.value)
    with pytest.raises(ModelLoadError, match="is a file"):
        GroundingDinoDetector.load(not_a_folder, device="cpu")
    assert network_calls == []


# ------------------------------------------------------------------ compute dtype


def test_the_detector_computes_in_fp32_by_default(tiny_detector, monkeypatch, chelsea):
    seen = []
    forward = tiny_detector.model.forward

    def recording(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        outputs = forward(*args, **kwargs)
        seen.append(outputs.logits.dtype)
        return outputs

    monkeypatch.setattr(tiny_detector.model, "forward", recording)
    tiny_detector.detect([chelsea], PROMPTS, box_threshold=0.35, text_threshold=0.25, keep_threshold=0.1)

    assert tiny_detector.dtype == torch.float32
    assert seen == [False, torch.float32]


def test_bf16_on_the_cpu_is_honoured_and_post_processed_in_fp32(tiny_detector_dir, chelsea, monkeypatch):
    detector = GroundingDinoDetector.load(tiny_detector_dir, device="cpu", dtype="bf16")
    seen = []
    forward = detector.model.forward

    def recording(*args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return forward(*args, **kwargs)

    monkeypatch.setattr(detector.model, "forward", recording)
    thresholds = {"box_threshold": 0.35, "text_threshold": 0.25, "keep_threshold": 0.1}
    (found,) = detector.detect([chelsea], PROMPTS, **thresholds)

    assert detector.dtype == torch.bfloat16 and "bfloat16" in repr(detector)
    assert seen == [(True, torch.bfloat16)]
    assert found and all(isinstance(d.score, float) and 0.0 <= d.score <= 1.0 for d in found)


def test_fp16_on_the_cpu_and_unknown_dtypes_are_refused_before_loading(tiny_detector_dir):
    with pytest.raises(InferenceError, match="fp16 runs on CUDA only"):
        GroundingDinoDetector.load(tiny_detector_dir, device="cpu", dtype="fp16")
    with pytest.raises(ValueError, match="unknown detector dtype"):
        GroundingDinoDetector.load(tiny_detector_dir, device="cpu", dtype="half")


def test_tf32_is_allowed_during_a_cuda_forward_and_restored_after(tiny_detector):
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    on_cuda = GroundingDinoDetector(tiny_detector.model, tiny_detector.processor, name="tiny", device="cuda")
    strict = GroundingDinoDetector(
        tiny_detector.model, tiny_detector.processor, name="tiny", device="cuda", allow_tf32=False
    )
    try:
        matmul.allow_tf32 = cudnn.allow_tf32 = False
        with on_cuda._precision():
            assert matmul.allow_tf32 and cudnn.allow_tf32
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)
        matmul.allow_tf32 = cudnn.allow_tf32 = True
        with strict._precision():
            assert not matmul.allow_tf32 and not cudnn.allow_tf32
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before
