"""Enter → the next image drawn, on the review page, with and without the next image prefetched.

    .venv/bin/python bench/review_next.py                  # ~1-2 min on 2 CPU cores
    .venv/bin/python bench/review_next.py --rounds 8 --think-ms 500 --json var/bench-review-next.json

What the e2e test tests/e2e/test_review_navigation.py checks on any machine (the next image's data
and bitmap are asked for before Enter and not again after), this measures, on this machine:

1. in a throwaway folder var/bench-review-next/ (deleted and made again on every run: SQLite
   database, media), `manage.py migrate` and `manage.py seed_demo` (the demo: five of skimage's
   photos, new, no proposals), then `manage.py runserver --noreload` (the web process only);
2. round after round, once with prefetch and once without (alternating, so that a slow spell hits
   both), every demo image set back to new and unleased, a fresh browser context (an empty HTTP
   cache) logs the demo annotator in, presses "Start reviewing", and on each image waits as a
   reviewer would (`--think-ms`; with prefetch, also until the next image has been peeked and
   its bitmap loaded: what happens while an image is reviewed) and presses Enter, four times;
3. the figure is the page's own (static/js/prefetch.js): performance.now() based epoch time of
   the Enter key, kept in sessionStorage, read by the next page once its image is drawn (the
   first animation frame after the canvas's `canvas:ready`): `window.labelgpt.timing`.
   Prefetch is turned off with localStorage["labelgpt:prefetch"] = "off".

Reported: Enter → next image p50 and p95 in each mode, and the ratios without / with prefetch. The
load average before and after is printed: figures taken while other processes ran are not
comparable. Nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

# `python bench/review_next.py` puts bench/ first on sys.path, where bench/click.py would shadow
# the `click` package: put the repository there instead.
_HERE, _ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from bench import _server as srv  # noqa: E402 (after the sys.path fix above)
from tests.e2e import browser  # noqa: E402

WORK_DIR = srv.ROOT / "var" / "bench-review-next"
PASSWORD = "bench-next-password-not-secret"  # noqa: S105 (a throwaway local user)
ANNOTATOR = "annotator"  # seed_demo's annotator

MODES = {
    "prefetch": "localStorage.removeItem('labelgpt:prefetch');",
    "none": "localStorage.setItem('labelgpt:prefetch', 'off');",
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per mode (4 Enter presses each)")
    parser.add_argument("--think-ms", type=float, default=300.0, help="time on each image before Enter")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return parser.parse_args(argv)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def reset_demo() -> int:
    """Every image of the demo project new and unleased again; the number of images."""
    from labeling.management.commands.seed_demo import DEMO_PROJECT
    from labeling.models import Image

    return Image.objects.filter(project__name=DEMO_PROJECT).update(
        status=Image.Status.NEW, assignee=None, lease_expires_at=None, reviewed_by=None, reviewed_at=None
    )


def one_round(chromium, base_url: str, project_id: int, mode: str, think_ms: float) -> list[dict]:
    """Review the demo's images once in a fresh context; one entry per Enter."""
    page = browser.new_page(chromium, base_url, timeout_ms=30_000)
    page.add_init_script(MODES[mode])
    samples = []
    try:
        browser.log_in(page, ANNOTATOR, PASSWORD)
        page.goto(f"/projects/{project_id}/review/")  # the Review tab
        page.locator("#start-reviewing").click()
        browser.wait_for_review(page)
        while True:
            if mode == "prefetch":
                page.wait_for_function("() => window.labelgpt.timing.peeked !== null")
            page.wait_for_timeout(think_ms)
            url = page.url
            page.keyboard.press("Enter")
            page.wait_for_url(lambda u, before=url: u != before)
            if "/review/" not in page.url or "/images/" not in page.url:
                break  # the queue page: nothing left
            page.wait_for_function(
                "() => window.labelgpt && document.documentElement.dataset.enterToImageMs !== undefined"
            )
            timing = page.evaluate("window.labelgpt.timing")
            samples.append(
                {
                    "ms": timing["enterToImageMs"],
                    "page_ms": timing["pageMs"],
                    "prefetched": timing["prefetchUsed"],
                }
            )
    finally:
        page.context.close()
    return samples


def main(argv=None) -> int:
    args = parse_args(argv)
    port = srv.free_port()
    srv.local_app_env(WORK_DIR, PORT=str(port))
    srv.manage("migrate", "--verbosity", "0")
    srv.manage("seed_demo", "--quiet")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from labeling.management.commands.seed_demo import DEMO_PROJECT
    from labeling.models import Project

    project_id = Project.objects.get(name=DEMO_PROJECT).pk
    user = get_user_model().objects.get(username=ANNOTATOR)
    user.set_password(PASSWORD)
    user.save()
    load_before = os.getloadavg()
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    serving = ["runserver", "--noreload", f"127.0.0.1:{port}"]
    log = WORK_DIR / "runserver.log"
    with srv.app_served(serving, port=port, log=log, start_s=120) as base_url, browser.chromium() as chromium:
        for round_index in range(args.rounds):
            order = list(MODES) if round_index % 2 == 0 else list(MODES)[::-1]
            for mode in order:
                images = reset_demo()
                results[mode].extend(one_round(chromium, base_url, project_id, mode, args.think_ms))
    load_after = os.getloadavg()

    report: dict = {"images": images, "rounds": args.rounds, "think_ms": args.think_ms, "modes": {}}
    for mode, samples in results.items():
        values = [s["ms"] for s in samples if s["ms"] is not None]
        report["modes"][mode] = {
            "n": len(values),
            "p50_ms": percentile(values, 50),
            "p95_ms": percentile(values, 95),
            "prefetch_used": sum(1 for s in samples if s["prefetched"]),
            # The next page's own share: from its navigation's start to its image drawn.
            "page_p50_ms": percentile([s["page_ms"] for s in samples if s["ms"] is not None], 50),
            "samples_ms": [round(v, 1) for v in values],
        }
    with_p, without = report["modes"]["prefetch"], report["modes"]["none"]
    for q in ("p50_ms", "p95_ms"):
        if with_p[q] and without[q]:
            report[f"ratio_{q[:3]}"] = round(without[q] / with_p[q], 2)
    report["load_before"], report["load_after"] = load_before, load_after

    print(f"Enter → next image drawn, demo data ({images} images), {args.rounds} rounds per mode:")
    for mode, label in (("prefetch", "with prefetch   "), ("none", "without prefetch")):
        m = report["modes"][mode]
        print(
            f"  {label}: p50 {m['p50_ms']:.1f} ms, p95 {m['p95_ms']:.1f} ms "
            f"({m['n']} presses, prefetched data used on {m['prefetch_used']}; "
            f"of which the next page's own load p50 {m['page_p50_ms']:.1f} ms)"
        )
    print(
        f"  ratio without / with: p50 {report.get('ratio_p50', 'n/a')}x, "
        f"p95 {report.get('ratio_p95', 'n/a')}x"
    )
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
