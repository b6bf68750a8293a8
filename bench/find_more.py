""" "Find more like this": what SAM 3's exemplar prompt costs on one image, against its text
prompt alone on the same image in the same run (the baseline: one class of a SAM 3 pre-label).

    .venv/bin/python bench/find_more.py                         # the tiny SAM 3 (built here)
    .venv/bin/python bench/find_more.py --real --repeats 1      # real-size SAM 3, random weights
    .venv/bin/python bench/find_more.py --model DIR --repeats 3 # any SAM 3 folder (save_pretrained)

`--real` builds once into var/bench-models/sam3-random (git-ignored) transformers' `Sam3Config()`
defaults (the published facebook/sam3 architecture: its ViT backbone at 1008 px, CLIP text
encoder, DETR encoder / decoder with 200 queries, mask decoder) with seeded random weights, the
default `Sam3ImageProcessor` (1008 x 1008) and the tiny SAM 3's BPE tokenizer (the text encoder
keeps its real 49408-entry embedding table; only the ids differ): the compute of the real model.

Both go through the project's own loader (`Sam3Detector.load`): `detect(image, [class])` (text
only) and `find_similar(image, text, positive_boxes=[1 box], negative_boxes=[N boxes])` (text and
exemplars through the processor's input_boxes), then the proposals' encoding
(`pipeline.proposals_from_detections`: mask hygiene, RLE and polygons) that the worker adds.
Printed: the median seconds of each over `--repeats` runs after one warm-up, and the ratio
find_similar / detect. The worker's database writes and the deduplication (a few IoUs per found
instance) are not in it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

_HERE, _ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from bench import _models as bm  # noqa: E402 (after the sys.path fix above)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a SAM 3 folder (default: the tiny SAM 3)")
    parser.add_argument("--real", action="store_true", help="the real-size SAM 3 with random weights")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--negatives", type=int, default=3, help="negative exemplar boxes")
    parser.add_argument("--keep", type=float, default=0.1, help="keep threshold")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


REAL_DIR = bm.MODELS_DIR / "sam3-random"


def ensure_real_sam3(folder: Path = REAL_DIR, *, seed: int = bm.SEED) -> Path:
    """The real-size SAM 3 architecture with seeded random weights (built once)."""
    if (folder / "config.json").exists() and (folder / "processor_config.json").exists():
        return folder
    import torch
    from transformers import CLIPTokenizer, Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    from inference.models.tiny_sam3 import tiny_bpe

    vocab, merges = tiny_bpe()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges])
    config = Sam3Config()
    config.text_config.bos_token_id, config.text_config.eos_token_id = 0, 1
    config.text_config.pad_token_id = 1
    bm.log("building the real-size SAM 3 with random weights (once) ...")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3Model(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def timed(run, repeats: int) -> tuple[float, object]:
    result = run()  # warm-up (lazy initialisations, allocator)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from inference.models.sam3 import Sam3Detector
    from inference.models.tiny_sam3 import build_tiny_sam3
    from inference.pipeline import DetectParams, proposals_from_detections
    from inference.prompts import ClassPrompt

    threads = bm.set_threads()
    folder = ensure_real_sam3() if args.real else args.model
    if folder is None:
        folder = bm.MODELS_DIR / "tiny-sam3"
        if not (folder / "config.json").exists():
            build_tiny_sam3(folder, seed=bm.SEED)
    detector = Sam3Detector.load(str(folder), device="cpu")
    image = bm.test_image()
    width, height = image.size
    positive = [(width * 0.3, height * 0.3, width * 0.2, height * 0.25)]
    negatives = [
        (width * (0.05 + 0.12 * i) % (width * 0.8), height * 0.7, width * 0.1, height * 0.12)
        for i in range(args.negatives)
    ]
    params = DetectParams(box_threshold=0.3, text_threshold=0.25, keep_threshold=args.keep)
    prompt = ClassPrompt(name="cat", prompt="cat")

    def text_only():
        (found,) = detector.detect([image], [prompt], keep_threshold=args.keep)
        return proposals_from_detections(found, params)

    def exemplars():
        found = detector.find_similar(
            image, text="cat", positive_boxes=positive, negative_boxes=negatives, keep_threshold=args.keep
        )
        return proposals_from_detections(found, params)

    baseline, by_text = timed(text_only, args.repeats)
    seconds, by_example = timed(exemplars, args.repeats)
    figures = {
        "model": str(folder),
        "image": f"{width}x{height}",
        "threads": threads,
        "repeats": args.repeats,
        "negatives": args.negatives,
        "detect_text_only_s": round(baseline, 4),
        "find_similar_s": round(seconds, 4),
        "ratio_find_similar_over_detect": round(seconds / baseline, 3) if baseline else None,
        "proposals_text_only": len(by_text),
        "proposals_find_similar": len(by_example),
        "environment": bm.environment(),
    }
    print(
        f"SAM 3 {folder.name} on {width}x{height}, {threads} threads, median of {args.repeats}:\n"
        f"  text only (detect, 1 class)            {baseline * 1000:9.1f} ms  ({len(by_text)} proposals)\n"
        f"  text + 1 positive + {args.negatives} negative boxes      {seconds * 1000:9.1f} ms  "
        f"({len(by_example)} proposals)\n"
        f"  ratio find_similar / detect            {figures['ratio_find_similar_over_detect']:9.3f}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
