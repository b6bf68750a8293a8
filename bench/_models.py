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

Both are built once into var/bench-models/ (git-ignored) and reused by later runs.
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
BERT_VOCAB_SIZE = 30522
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

    config = GroundingDinoConfig()
    wrong = {}
    for path, want in PUBLISHED_DETECTOR.items():
        got = functools.reduce(getattr, path.split("."), config)
        got = list(got) if isinstance(got, tuple | list) else got
        if got != want:
            wrong[path] = got
    if wrong:
        raise RuntimeError(f"GroundingDinoConfig() no longer matches grounding-dino-tiny: {wrong}")
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
