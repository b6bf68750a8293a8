"""Shared helpers for the benchmarks: real-size models with random weights, test images, timing.

No weights can be downloaded where the benchmarks run, so they use the REAL architectures with
RANDOM (seeded) weights: the compute is that of the trained models, only the outputs are junk.

- Grounding DINO tiny: transformers' `GroundingDinoConfig()` defaults are the published
  IDEA-Research/grounding-dino-tiny config.json (Swin-T backbone: embed_dim 96, depths
  2/2/6/2, heads 3/6/12/24, window 7; BERT-base text encoder: 12 layers, hidden 768, vocab
  30522; d_model 256, 6 encoder + 6 decoder layers, FFN 2048, 8 heads, 4 points, 4 feature
  levels, 900 queries, max_text_len 256). Saved with a processor that has the real image
  defaults (shortest_edge 800, longest_edge 1333) and a BERT-layout vocabulary of 30522 tokens,
  so `inference.models.grounding_dino.GroundingDinoDetector.load(folder)` loads it like the
  downloaded checkpoint.
- SAM vit_b: segment-anything's own `sam_model_registry["vit_b"]`, its state_dict saved like
  the official .pth, so `inference.models.sam.SamSegmenter.load("vit_b", checkpoint=path)` loads it.
- SAM 3: transformers' `Sam3Config()` defaults are facebook/sam3's architecture (as built by
  facebookresearch/sam3's model_builder: a ViT of width 1024, 32 layers, 16 heads, MLP 4736
  (ratio 4.625), 1008 px input, patch 14, window 24, global attention in blocks 7/15/23/31,
  pretrain size 336; a CLIP text encoder of width 1024, 24 layers, 16 heads, 49408 tokens,
  context 32; d_model 256; DETR encoder 6 layers and decoder 6 layers of FFN 2048 and 8 heads,
  200 queries; a 3-layer geometry encoder; a mask decoder of 3 upsampling stages; ~850M
  parameters), checked field by field (`PUBLISHED_SAM3`). Saved with the real image processor
  (1008 x 1008, masks 288 x 288) and a CLIP BPE tokenizer written offline with CLIP's vocabulary
  size and special-token ids (the tiny SAM 3's words and letters, padded with filler tokens), so
  `inference.models.sam3.Sam3Detector.load(folder)` loads it like the downloaded checkpoint.
  `sam3_tracker(model)`: SAM 3's interactive part (transformers' Sam3TrackerModel: real-size
  prompt encoder and mask decoder) on the detector's own vision encoder (one shared backbone,
  as in SAM 3), for click latency on a cached image embedding.

All are built once into var/bench-models/ (git-ignored) and reused by later runs.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the app's packages (inference, labeling) live there
    sys.path.insert(0, str(ROOT))

MODELS_DIR = ROOT / "var" / "bench-models"
DETECTOR_DIR = MODELS_DIR / "grounding-dino-tiny-random"
SAM_VIT_B = MODELS_DIR / "sam_vit_b_random.pth"
SAM3_DIR = MODELS_DIR / "sam3-random"
BERT_VOCAB_SIZE = 30522
CLIP_VOCAB_SIZE = 49408
SEED = 0
_BUILD_STAMP = "bench-build.json"  # written last: a folder without it is an interrupted build


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------- models


def bert_layout_vocabulary(size: int = BERT_VOCAB_SIZE) -> list[str]:
    """`size` tokens laid out like bert-base-uncased where Grounding DINO cares: [PAD]=0,
    [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, "."=1012, "?"=1029 (the tiny vocabulary of
    inference.models.tiny_gdino), padded with filler word pieces to BERT's 30522 entries so the word
    embedding matrix has the real size."""
    from inference.models.tiny_gdino import tiny_vocabulary

    vocab = tiny_vocabulary()
    vocab += [f"##filler{i}" for i in range(size - len(vocab))]
    ids = {token: i for i, token in enumerate(vocab)}
    expected = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}
    if len(vocab) != size or any(ids.get(token) != i for token, i in expected.items()):
        raise RuntimeError("the benchmark vocabulary does not have BERT's layout")
    return vocab


# grounding-dino-tiny's published config.json, where the architecture is set: attribute paths of
# GroundingDinoConfig (the backbone's and the text encoder's own configs under theirs).
PUBLISHED_DETECTOR = {
    "num_queries": 900, "d_model": 256, "max_text_len": 256, "two_stage": True,
    "encoder_layers": 6, "encoder_ffn_dim": 2048, "encoder_attention_heads": 8, "encoder_n_points": 4,
    "decoder_layers": 6, "decoder_ffn_dim": 2048, "decoder_attention_heads": 8, "decoder_n_points": 4,
    "num_feature_levels": 4,
    "backbone_config.model_type": "swin", "backbone_config.embed_dim": 96,
    "backbone_config.depths": [2, 2, 6, 2], "backbone_config.num_heads": [3, 6, 12, 24],
    "backbone_config.window_size": 7, "backbone_config.out_indices": [2, 3, 4],
    "text_config.model_type": "bert", "text_config.hidden_size": 768, "text_config.num_hidden_layers": 12,
    "text_config.num_attention_heads": 12, "text_config.intermediate_size": 3072,
    "text_config.vocab_size": BERT_VOCAB_SIZE,
}  # fmt: skip


def detector_config():
    """grounding-dino-tiny's architecture: transformers' defaults, checked field by field
    against the published config (so a transformers change of defaults cannot go unnoticed)."""
    from transformers import GroundingDinoConfig

    return _published(GroundingDinoConfig(), PUBLISHED_DETECTOR, "grounding-dino-tiny")


def _published(config, published: dict, name: str):
    """`config` when every field of `published` (dotted path → value) has that value in it;
    RuntimeError naming the fields that differ otherwise."""
    wrong = {}
    for path, want in published.items():
        got = functools.reduce(getattr, path.split("."), config)
        got = list(got) if isinstance(got, tuple | list) else got
        if got != want:
            wrong[path] = got
    if wrong:
        raise RuntimeError(f"{type(config).__name__}() no longer matches {name}: {wrong}")
    return config


def ensure_detector(folder: Path = DETECTOR_DIR, *, seed: int = SEED) -> Path:
    """The random real-size Grounding DINO tiny folder (built on first use, ~700 MB)."""
    if (folder / _BUILD_STAMP).is_file():
        return folder
    import torch
    from transformers import (
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    from inference.models.tiny_gdino import make_tokenizer

    log(f"building a random grounding-dino-tiny (real size) in {folder} ...")
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(bert_layout_vocabulary(), folder / "vocab.txt")
    config = detector_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GroundingDinoForObjectDetection(config).eval()
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 800, "longest_edge": 1333})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    parameters = sum(p.numel() for p in model.parameters())
    (folder / _BUILD_STAMP).write_text(
        json.dumps({"seed": seed, "parameters": parameters, "vocab": BERT_VOCAB_SIZE}) + "\n"
    )
    log(f"  {parameters / 1e6:.1f}M parameters, built in {time.perf_counter() - started:.0f} s")
    return folder


def ensure_sam_vit_b(path: Path = SAM_VIT_B, *, seed: int = SEED) -> Path:
    """A random SAM vit_b checkpoint (state_dict, like sam_vit_b_01ec64.pth; ~375 MB)."""
    if path.is_file():
        return path
    import torch
    from segment_anything import sam_model_registry

    log(f"building a random SAM vit_b checkpoint at {path} ...")
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = sam_model_registry["vit_b"](checkpoint=None)
    tmp = path.with_name(path.name + ".part")
    torch.save(sam.state_dict(), tmp)
    os.replace(tmp, path)  # atomic: an interrupted build leaves no half checkpoint
    return path


# facebook/sam3's architecture (facebookresearch/sam3 model_builder.py): attribute paths of
# Sam3Config (its sub-configs under theirs).
PUBLISHED_SAM3 = {
    "vision_config.backbone_config.hidden_size": 1024,
    "vision_config.backbone_config.num_hidden_layers": 32,
    "vision_config.backbone_config.num_attention_heads": 16,
    "vision_config.backbone_config.intermediate_size": 4736,
    "vision_config.backbone_config.image_size": 1008,
    "vision_config.backbone_config.patch_size": 14,
    "vision_config.backbone_config.window_size": 24,
    "vision_config.backbone_config.global_attn_indexes": [7, 15, 23, 31],
    "vision_config.backbone_config.pretrain_image_size": 336,
    "vision_config.fpn_hidden_size": 256,
    "text_config.hidden_size": 1024, "text_config.num_hidden_layers": 24,
    "text_config.num_attention_heads": 16, "text_config.vocab_size": CLIP_VOCAB_SIZE,
    "text_config.max_position_embeddings": 32,
    "detr_encoder_config.hidden_size": 256, "detr_encoder_config.num_layers": 6,
    "detr_encoder_config.intermediate_size": 2048, "detr_encoder_config.num_attention_heads": 8,
    "detr_decoder_config.hidden_size": 256, "detr_decoder_config.num_layers": 6,
    "detr_decoder_config.intermediate_size": 2048, "detr_decoder_config.num_attention_heads": 8,
    "detr_decoder_config.num_queries": 200,
    "geometry_encoder_config.num_layers": 3, "geometry_encoder_config.hidden_size": 256,
    "mask_decoder_config.hidden_size": 256, "mask_decoder_config.num_upsampling_stages": 3,
}  # fmt: skip


def sam3_config():
    """facebook/sam3's architecture: transformers' defaults, checked against `PUBLISHED_SAM3`."""
    from transformers import Sam3Config

    return _published(Sam3Config(), PUBLISHED_SAM3, "facebook/sam3")


def clip_layout_tokenizer(size: int = CLIP_VOCAB_SIZE):
    """A CLIP BPE tokenizer of `size` tokens with CLIP's special ids (<|startoftext|> = size-2,
    <|endoftext|> = size-1, as Sam3Config's text config says): the tiny SAM 3's letters and words
    (inference.models.tiny_sam3), padded with filler tokens, written offline."""
    from transformers import CLIPTokenizer

    from inference.models.tiny_sam3 import tiny_bpe

    small, merges = tiny_bpe()
    words = [token for token in small if not token.startswith("<|")]
    vocab = {token: i for i, token in enumerate(words)}
    for i in range(size - 2 - len(vocab)):
        vocab[f"filler{i}</w>"] = len(vocab)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = size - 2, size - 1
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges])
    if len(tokenizer) != size or tokenizer.convert_tokens_to_ids("<|endoftext|>") != size - 1:
        raise RuntimeError("the benchmark CLIP tokenizer does not have CLIP's layout")
    return tokenizer


def ensure_sam3(folder: Path = SAM3_DIR, *, seed: int = SEED) -> Path:
    """The random real-size SAM 3 folder (built on first use, ~3.4 GB, a few minutes)."""
    if (folder / _BUILD_STAMP).is_file():
        return folder
    import torch
    from transformers import Sam3ImageProcessor, Sam3Model, Sam3Processor

    log(f"building a random SAM 3 (real size) in {folder} ...")
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    config = sam3_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3Model(config).eval()
    processor = Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=clip_layout_tokenizer())
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    parameters = sum(p.numel() for p in model.parameters())
    (folder / _BUILD_STAMP).write_text(
        json.dumps({"seed": seed, "parameters": parameters, "vocab": CLIP_VOCAB_SIZE}) + "\n"
    )
    log(f"  {parameters / 1e6:.1f}M parameters, built in {time.perf_counter() - started:.0f} s")
    return folder


def sam3_tracker(model, *, seed: int = SEED):
    """SAM 3's interactive part (transformers' Sam3TrackerModel: prompt encoder and SAM-style mask
    decoder at the sizes of `model`'s config, random seeded weights) on `model`'s own vision
    encoder: SAM 3 shares one backbone between its detector and its tracker. Built with a
    one-layer throwaway backbone that is then replaced, so no second ViT is initialised."""
    import copy

    import torch
    from transformers import Sam3TrackerConfig, Sam3TrackerModel

    vision = model.config.vision_config.to_dict()
    width = model.config.vision_config.fpn_hidden_size
    throwaway = copy.deepcopy(vision)
    throwaway["backbone_config"].update(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        global_attn_indexes=[0],
    )
    image_size = vision["backbone_config"]["image_size"]
    patch = vision["backbone_config"]["patch_size"]
    config = Sam3TrackerConfig(
        vision_config=throwaway,
        prompt_encoder_config={"hidden_size": width, "image_size": image_size, "patch_size": patch},
        mask_decoder_config={"hidden_size": width, "iou_head_hidden_dim": width},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tracker = Sam3TrackerModel(config)
    tracker.vision_encoder = model.vision_encoder
    tracker.config.vision_config = model.config.vision_config
    return tracker.to(next(model.parameters()).device).eval()


def set_threads() -> int:
    import torch

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def environment() -> dict:
    """Device, torch / transformers versions, CPU model and thread count, for the reports."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": cuda,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


# ------------------------------------------------------------------------------------- images


def test_image(width: int = 1333, height: int = 800, *, variant: int = 0):
    """skimage's astronaut resized to width × height (RGB PIL image); `variant` > 0 flips and
    rolls it so images of a batch differ (and do not share an embedding cache key)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    pixels = data.astronaut()
    if variant:
        pixels = np.roll(pixels[:, ::-1] if variant % 2 else pixels, 37 * variant, axis=1)
    return Image.fromarray(np.ascontiguousarray(pixels)).resize((width, height), Image.Resampling.BILINEAR)


def image_sha256(image) -> str:
    import hashlib

    return hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()


# ------------------------------------------------------------------------------------- timing


def prelabel_checked(items, prompts, params, *, detector, segmenter) -> list:
    """`inference.pipeline.prelabel_batch` on `items`, synchronised (`sync`); RuntimeError naming
    the first failures when any image failed (a bench must not time an error path)."""
    from inference.pipeline import prelabel_batch

    out = prelabel_batch(items, prompts, params, detector=detector, segmenter=segmenter)
    sync()
    failed = [r.error for r in out if r.error]
    if failed:
        raise RuntimeError(f"pipeline failed: {failed[:2]}")
    return out


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# Milliseconds of each `cpu_probe` run, taken before every timed round: the machines these run on
# may be shared, and a probe far above its median shows the run hit a slow spell of the host.
PROBES: list[float] = []
_PROBE_MATRIX = []


def cpu_probe() -> float:
    """Time a fixed CPU workload (4 products of 512x512 float32 matrices) and record it."""
    import torch

    if not _PROBE_MATRIX:
        _PROBE_MATRIX.append(torch.randn(512, 512, generator=torch.Generator().manual_seed(0)))
    matrix = _PROBE_MATRIX[0]
    started = time.perf_counter()
    for _ in range(4):
        matrix @ matrix
    elapsed = (time.perf_counter() - started) * 1000.0
    PROBES.append(elapsed)
    return elapsed


def settle(max_wait_s: float = 30.0, quiet: int = 5) -> float:
    """Wait (up to `max_wait_s`) until `quiet` probes in a row run within 1.5x of the fastest
    probe seen: after heavy work, or in a slow spell of a shared host. Returns seconds waited."""
    started = time.perf_counter()
    streak = 0
    while streak < quiet and time.perf_counter() - started < max_wait_s:
        elapsed = cpu_probe()
        streak = streak + 1 if elapsed <= 1.5 * min(PROBES) else 0
        time.sleep(0.05)
    return time.perf_counter() - started


def quiet_only(times_ms: list[float], probes_ms: list[float]) -> list[float]:
    """The samples whose preceding probe ran within 1.5x of the median probe."""
    limit = 1.5 * percentile(probes_ms, 50)
    return [t for t, probe in zip(times_ms, probes_ms, strict=True) if probe <= limit]


def cpu_snapshot() -> tuple[int, int, int]:
    """(all CPU time, busy CPU time, this process's CPU time incl. children) in clock ticks,
    from /proc (zeros where there is none)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        own = sum(int(v) for v in stat[11:15])  # utime, stime, cutime, cstime
    except (OSError, ValueError, IndexError):
        return 0, 0, 0
    return sum(fields), sum(fields) - fields[3] - fields[4], own  # minus idle and iowait


def others_cpu_share(since: tuple[int, int, int]) -> float | None:
    """The share (0..1) of the machine's CPU time that OTHER processes used since `since`: a
    benchmark shares the machine, and figures taken while something else ran are not comparable."""
    now = cpu_snapshot()
    total = now[0] - since[0]
    if total <= 0:
        return None
    return max(0.0, (now[1] - since[1]) - (now[2] - since[2])) / total


def probe_summary() -> dict:
    if not PROBES:
        return {}
    return {"n": len(PROBES), "p50_ms": percentile(PROBES, 50), "max_ms": max(PROBES)}


def time_calls(fn: Callable[[], object], *, repeats: int, warmup: int = 1) -> list[float]:
    """Milliseconds of each of `repeats` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        cpu_probe()
        started = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def time_interleaved(
    fns: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Like `time_calls` for several variants, timed in turn (a, b, c, a, b, c, ...), so that a
    slow spell of a shared machine does not fall on one variant only."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        cpu_probe()
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - started) * 1000.0)
    return times


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(times_ms: list[float]) -> dict:
    return {
        "n": len(times_ms),
        "mean_ms": statistics.fmean(times_ms),
        "median_ms": statistics.median(times_ms),
        "min_ms": min(times_ms),
        "max_ms": max(times_ms),
    }


def latency(times_ms: list[float]) -> dict:
    return {
        "n": len(times_ms),
        "p50_ms": percentile(times_ms, 50),
        "p95_ms": percentile(times_ms, 95),
        "max_ms": max(times_ms),
        "mean_ms": statistics.fmean(times_ms),
    }


def write_json(path: str | os.PathLike, payload: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def run_and_report(args, run: Callable[[object], dict], report: Callable[[dict, dict], None]) -> int:
    """A benchmark's main once its options are parsed: torch on every CPU, `run(args)` with the
    share of the CPU that other processes used meanwhile added to its results
    (`others_cpu_share`), `report(results, environment)`, and with `--json PATH` the environment,
    the options and the results written to PATH. Returns the exit status (0)."""
    set_threads()
    env = environment()
    since = cpu_snapshot()
    results = run(args)
    results["others_cpu_share"] = others_cpu_share(since)
    report(results, env)
    if args.json:
        write_json(args.json, {"environment": env, "options": vars(args), "results": results})
        print(f"wrote {args.json}")
    return 0
