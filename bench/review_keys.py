"""The review page with 1,000 annotations on one image: time per key and per frame, in Chromium.

    .venv/bin/python bench/review_keys.py                  # ~1 min on 2 CPU cores
    .venv/bin/python bench/review_keys.py --annotations 2000 --rounds 5 --json var/bench-keys.json

What the e2e test tests/e2e/test_review.py::test_an_image_with_1000_annotations_... checks on any
machine (every key handled, all annotations drawn), this measures, on this machine:

1. in a throwaway folder var/bench-review-keys/ (deleted and made again on every run: SQLite
   database, media), `manage.py migrate`, then `manage.py runserver --noreload` (the web process
   only: nothing here runs a model);
2. two projects on the same photo (skimage's coffee, 400 × 600): the **baseline** with
   `--baseline` annotations (default 10) and the **crowd** with `--annotations` (default 1,000),
   random diamonds of 8-60 px (seeded: tests/e2e/browser.py's `crowd`, as in the e2e test), all
   proposed;
3. in headless Chromium (Debian's /usr/bin/chromium, through Playwright) the manager opens each
   review page in turn, round after round (baseline, crowd, baseline, crowd, ...: a slow spell
   hits both), and measures *in the page* with performance.now():
   - **Tab**: `--keys` Tab keydowns dispatched one after another on the document (select the next
     proposal: the list, the canvas and the details follow); ms per key;
   - **accept**: `--accepts` "a" keydowns (accept the selected proposal and move on; the save is
     queued, not awaited); ms per key; the page then waits until every save is answered;
   - **frame**: `--frames` redraws of the whole canvas, each after a zoom step around the centre
     (in, out, in, ...) on its own animation frame: the canvas's own draw time (`stats.lastDrawMs`);
     then the view is fitted again and the number of annotations drawn read back.
   Before each round the annotations are set back to proposed and the stats reset.

Reported: the median (and the slowest round's median) of each figure for both projects, and the
ratio crowd / baseline (how the cost grows with the number of annotations). Budgets, the
thresholds the e2e test used to assert: a key within one 60 Hz frame (16 ms) and a frame within
50 ms, for the crowd. The load average before and after is printed: figures taken while other
processes ran are not comparable.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
from pathlib import Path

# `python bench/review_keys.py` puts bench/ first on sys.path, where bench/click.py would shadow
# the `click` package: put the repository there instead.
_HERE, _ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from bench import _server as srv  # noqa: E402 (after the sys.path fix above)
from tests.e2e import browser  # noqa: E402

WORK_DIR = srv.ROOT / "var" / "bench-review-keys"
PASSWORD = "bench-keys-password-not-secret"  # noqa: S105 (a throwaway local user)
BUDGET_KEY_MS = 16.0
BUDGET_FRAME_MS = 50.0

# Runs in the page (a function: the app's CSP forbids evaluating strings).
MEASURE_KEYS = """([key, count]) => {
  const press = () => document.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true}));
  const started = performance.now();
  for (let i = 0; i < count; i++) press();
  return (performance.now() - started) / count;
}"""
MEASURE_FRAMES = """async (count) => {
  const canvas = window.labelgpt.canvas;
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  const times = [];
  for (let i = 0; i < count; i++) {
    canvas.zoomBy(i % 2 ? 1 / 1.25 : 1.25);
    const before = canvas.stats.frames;
    await frame();
    if (canvas.stats.frames > before) times.push(canvas.stats.lastDrawMs);
  }
  canvas.fit();
  await frame();
  return times;
}"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--annotations", type=int, default=1000, help="annotations of the crowd image")
    parser.add_argument("--baseline", type=int, default=10, help="annotations of the baseline image")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each opens both pages)")
    parser.add_argument("--keys", type=int, default=100, help="Tab presses per round")
    parser.add_argument("--accepts", type=int, default=5, help="'a' presses per round")
    parser.add_argument("--frames", type=int, default=20, help="redraws per round")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if args.accepts >= min(args.annotations, args.baseline):
        parser.error("--accepts must be below the number of annotations of both images")
    return args


def photo_png(name: str = "coffee") -> bytes:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(getattr(data, name)()).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def setup_projects(counts: dict[str, int]) -> dict[str, int]:
    """The bench user (staff) and one project per entry of `counts`, each with the photo and that
    many proposed annotations; returns name → image id."""
    from django.contrib.auth import get_user_model

    from labeling.models import Annotation, Image
    from labeling.services.images import images_ingest
    from labeling.services.projects import project_create

    user = get_user_model().objects.create_user(srv.USERNAME, password=PASSWORD, is_staff=True)
    png = photo_png()
    images = {}
    for name, count in counts.items():
        project = project_create(user=user, name=name, classes=[{"name": "bean"}, {"name": "cup"}])
        report = images_ingest(project=project, files=[("coffee.png", io.BytesIO(png))], user=user)
        image = Image.objects.get(pk=report.created[0][1])
        classes = list(project.classes.all())
        rows = [
            Annotation(image=image, label_class=classes[i % 2], source=Annotation.Source.MODEL, **fields)
            for i, fields in enumerate(browser.crowd(count, image.width, image.height))
        ]
        Annotation.objects.bulk_create(rows)
        Image.objects.filter(pk=image.pk).update(status=Image.Status.PRELABELED)
        images[name] = image.pk
    return images


def reset(image_id: int) -> None:
    from labeling.models import Annotation

    Annotation.objects.filter(image_id=image_id).update(state=Annotation.State.PROPOSED)


def measure(base_url: str, images: dict[str, int], args) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {name: [] for name in images}
    with browser.chromium() as chromium:
        page = browser.new_page(chromium, base_url, timeout_ms=60_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        browser.log_in(page, srv.USERNAME, PASSWORD)
        for _ in range(args.rounds):
            for name, image_id in images.items():
                reset(image_id)
                page.goto(f"/images/{image_id}/review/")
                browser.wait_for_review(page)
                shown = page.evaluate("() => window.labelgpt.review.visible.length")
                tab_ms = page.evaluate(MEASURE_KEYS, ["Tab", args.keys])
                accept_ms = page.evaluate(MEASURE_KEYS, ["a", args.accepts])
                browser.wait_saved(page)
                frames = page.evaluate(MEASURE_FRAMES, args.frames)
                drawn = page.evaluate("() => window.labelgpt.canvas.stats.drawn")
                results[name].append(
                    {
                        "shown": shown,
                        "drawn": drawn,
                        "tab_ms": tab_ms,
                        "accept_ms": accept_ms,
                        "frame_ms": statistics.median(frames) if frames else None,
                        "frame_max_ms": max(frames) if frames else None,
                        "frames": len(frames),
                    }
                )
    if errors:
        raise SystemExit(f"errors in the page: {errors[:3]}")
    return results


def figure(rounds: list[dict], key: str) -> tuple[float, float]:
    """(median over the rounds, the slowest round) of one per-round figure."""
    values = [r[key] for r in rounds if r[key] is not None]
    return statistics.median(values), max(values)


def main(argv=None) -> int:
    args = parse_args(argv)
    port = srv.free_port()
    srv.local_app_env(WORK_DIR)
    srv.manage("migrate", "--verbosity", "0")
    load_before = os.getloadavg()

    import django

    django.setup()
    images = setup_projects({"baseline": args.baseline, "crowd": args.annotations})
    serving = ["runserver", f"127.0.0.1:{port}", "--noreload"]
    with srv.app_served(serving, port=port, log=WORK_DIR / "runserver.log", start_s=120) as base_url:
        results = measure(base_url, images, args)
    load_after = os.getloadavg()

    print(
        f"review page, {args.rounds} rounds; baseline {args.baseline} annotations, "
        f"crowd {args.annotations}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        f"on {os.cpu_count()} CPUs"
    )
    summary = {}
    for key, label, budget in (
        ("tab_ms", "Tab (select the next)", BUDGET_KEY_MS),
        ("accept_ms", "a (accept, move on)", BUDGET_KEY_MS),
        ("frame_ms", "frame (whole canvas)", BUDGET_FRAME_MS),
    ):
        base, base_max = figure(results["baseline"], key)
        crowd, crowd_max = figure(results["crowd"], key)
        ratio = crowd / base if base else float("inf")
        summary[key] = {"baseline": base, "crowd": crowd, "ratio": ratio, "budget": budget}
        print(
            f"  {label:<22} baseline {base:7.2f} ms (slowest round {base_max:.2f}) | "
            f"crowd {crowd:7.2f} ms (slowest round {crowd_max:.2f}) | crowd / baseline {ratio:5.1f} | "
            f"budget {budget:.0f} ms: {'ok' if crowd <= budget else 'OVER'}"
        )
    shown = {name: {r["shown"] for r in rounds} for name, rounds in results.items()}
    drawn = {name: {r["drawn"] for r in rounds} for name, rounds in results.items()}
    print(f"  shown {shown}, drawn after fit {drawn}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "options": vars(args),
                    "load": [load_before, load_after],
                    "rounds": results,
                    "summary": summary,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
