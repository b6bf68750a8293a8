"""Enter → the next image drawn, on the review page: moved to in place, by a page load, and
without prefetch; under gunicorn (production) and runserver (DEBUG).

    .venv/bin/python bench/review_next.py                  # ~3 min on 2 CPU cores
    .venv/bin/python bench/review_next.py --rounds 8 --think-ms 500 --json var/bench-review-next.json
    .venv/bin/python bench/review_next.py --server gunicorn

What the e2e tests tests/e2e/test_review_navigation.py check on any machine (the next image's data
and bitmap are asked for before Enter and not again after; Enter moves in place), this measures,
on this machine:

1. in a throwaway folder var/bench-review-next/ (deleted and made again on every run: SQLite
   database, media), `manage.py migrate` and `manage.py seed_demo` (the demo: five of skimage's
   photos, new, no proposals); then, both at once on one database:
   - gunicorn (2 workers, webapp.wsgi) with DEBUG off and the production static files:
     `collectstatic` with webapp/storage.py's manifest storage (LABELGPT_MANIFEST_STATIC=1:
     hashed names, ES modules importing each other by them), served by WhiteNoise with a year's
     immutable cache headers: what production runs, so the headline;
   - `manage.py runserver --noreload` with DEBUG on (static files from the app folders,
     revalidated on each load: ~25 ES modules per page load), for comparison;
2. round after round, each server in each mode (in place; prefetch with a page load,
   localStorage["labelgpt:in-place"] = "off"; no prefetch, localStorage["labelgpt:prefetch"] =
   "off"), interleaved and reversed every other round so that a slow spell hits all alike: every
   demo image set back to new and unleased, a fresh browser context (an empty HTTP cache) logs
   the demo annotator in, presses "Start reviewing", and on each image waits as a reviewer would
   (`--think-ms`; with prefetch, also until the next image has been peeked and its bitmap
   loaded: what happens while an image is reviewed) and presses Enter, four times;
3. the figure is the page's own (static/js/prefetch.js): performance.now() based epoch time of
   the Enter key, kept in sessionStorage, read once the next image is drawn (the first animation
   frame after the canvas's `canvas:ready`), by the same page when it moved in place, else by
   the next page: `window.labelgpt.timing`.

Reported: Enter → next image p50 and p95 per server and mode, the ratios between the modes and
between the servers. The load average before and after is printed: figures taken while other
processes ran are not comparable. Nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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

# What each mode sets before the page's script runs (static/js/prefetch.js reads both keys).
PREFETCH_ON = "localStorage.removeItem('labelgpt:prefetch');"
MODES = {
    "in-place": PREFETCH_ON + " localStorage.removeItem('labelgpt:in-place');",
    "page-load": PREFETCH_ON + " localStorage.setItem('labelgpt:in-place', 'off');",
    "none": "localStorage.setItem('labelgpt:prefetch', 'off');",
}
SERVERS = ("gunicorn", "runserver")  # the first is the headline: what production runs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per mode (4 Enter presses each)")
    parser.add_argument("--think-ms", type=float, default=300.0, help="time on each image before Enter")
    parser.add_argument(
        "--server", choices=(*SERVERS, "both"), default="both",
        help="gunicorn (DEBUG off, production static files: the headline), runserver (DEBUG), or both",
    )  # fmt: skip
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
            if mode != "none":
                page.wait_for_function("() => window.labelgpt.timing.peeked !== null")
            page.wait_for_timeout(think_ms)
            url = page.url
            # Moved in place, the page is the same document: its mark is cleared first.
            page.evaluate("() => { delete document.documentElement.dataset.enterToImageMs; }")
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
                    "in_place": timing.get("inPlace", False),
                }
            )
    finally:
        page.context.close()
    return samples


def gunicorn_command(port: int) -> list[str]:
    """gunicorn as in production (bench/scale.py): webapp.wsgi, DEBUG off, 2 workers."""
    command = [
        str(srv.ROOT / ".venv" / "bin" / "gunicorn"), "--workers", "2",
        "--bind", f"127.0.0.1:{port}", "--timeout", "120", "webapp.wsgi:application",
    ]  # fmt: skip
    if not Path(command[0]).exists():
        command[0] = str(Path(sys.executable).with_name("gunicorn"))
    return command


@contextmanager
def servers_up(which: list[str]) -> Iterator[dict[str, str]]:
    """The app served both ways at once (one database), each server's base URL by name:
    runserver with DEBUG on (static files from the app folders, revalidated on every load), and
    gunicorn with DEBUG off and the production static files (collectstatic with the manifest
    storage: hashed names, served by WhiteNoise with a year's cache headers)."""
    with ExitStack() as stack:
        bases = {}
        if "runserver" in which:
            port = srv.free_port()
            os.environ["DEBUG"] = "1"
            os.environ.pop("LABELGPT_MANIFEST_STATIC", None)
            bases["runserver"] = stack.enter_context(
                srv.app_served(["runserver", "--noreload", f"127.0.0.1:{port}"], port=port,
                               log=WORK_DIR / "runserver.log", start_s=120)
            )  # fmt: skip
        if "gunicorn" in which:
            port = srv.free_port()
            os.environ.update(
                DEBUG="0", LABELGPT_MANIFEST_STATIC="1", STATIC_ROOT=str(WORK_DIR / "staticfiles")
            )
            srv.manage("collectstatic", "--noinput", "--verbosity", "0")
            bases["gunicorn"] = stack.enter_context(
                srv.command_served(
                    gunicorn_command(port), port=port, log=WORK_DIR / "gunicorn.log", start_s=60
                )
            )
        yield bases


def summary(samples: list[dict]) -> dict:
    values = [s["ms"] for s in samples if s["ms"] is not None]
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "prefetch_used": sum(1 for s in samples if s["prefetched"]),
        "in_place": sum(1 for s in samples if s["in_place"]),
        # A page load's own share: from the next page's navigation start to its image drawn.
        "page_p50_ms": percentile(
            [s["page_ms"] for s in samples if s["ms"] is not None and not s["in_place"]], 50
        ),
        "samples_ms": [round(v, 1) for v in values],
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def main(argv=None) -> int:
    args = parse_args(argv)
    which = list(SERVERS) if args.server == "both" else [args.server]
    srv.local_app_env(WORK_DIR)
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
    results = {server: {mode: [] for mode in MODES} for server in which}
    runs = [(server, mode) for server in which for mode in MODES]
    with servers_up(which) as bases, browser.chromium() as chromium:
        load_before = os.getloadavg()
        for round_index in range(args.rounds):
            # Interleaved, reversed every other round: a slow spell hits every setup alike.
            for server, mode in runs if round_index % 2 == 0 else runs[::-1]:
                images = reset_demo()
                results[server][mode].extend(
                    one_round(chromium, bases[server], project_id, mode, args.think_ms)
                )
        load_after = os.getloadavg()

    report: dict = {"images": images, "rounds": args.rounds, "think_ms": args.think_ms, "servers": {}}
    for server in which:
        modes = {mode: summary(samples) for mode, samples in results[server].items()}
        for q in ("p50_ms", "p95_ms"):
            modes[f"ratio_none_to_in_place_{q[:3]}"] = ratio(modes["none"][q], modes["in-place"][q])
            modes[f"ratio_page_load_to_in_place_{q[:3]}"] = ratio(modes["page-load"][q], modes["in-place"][q])
            modes[f"ratio_none_to_page_load_{q[:3]}"] = ratio(modes["none"][q], modes["page-load"][q])
        report["servers"][server] = modes
    if len(which) == 2:
        report["ratio_runserver_to_gunicorn_p50"] = {
            mode: ratio(
                report["servers"]["runserver"][mode]["p50_ms"], report["servers"]["gunicorn"][mode]["p50_ms"]
            )
            for mode in MODES
        }
    report["load_before"], report["load_after"] = load_before, load_after

    print(f"Enter → next image drawn, demo data ({images} images), {args.rounds} rounds per setup:")
    labels = {
        "in-place": "prefetch, in place ",
        "page-load": "prefetch, page load",
        "none": "no prefetch        ",
    }
    for server in which:
        print(f"  {server}{' (headline: production)' if server == 'gunicorn' else ' (DEBUG)'}:")
        modes = report["servers"][server]
        for mode, label in labels.items():
            m = modes[mode]
            fmt = lambda v: "n/a" if v is None else f"{v:.1f} ms"  # noqa: E731
            print(
                f"    {label}: p50 {fmt(m['p50_ms'])}, p95 {fmt(m['p95_ms'])} ({m['n']} presses; "
                f"prefetched data used {m['prefetch_used']}, in place {m['in_place']}; "
                f"a page load's own share p50 {fmt(m['page_p50_ms'])})"
            )
        pairs = (("none", "in_place"), ("page_load", "in_place"), ("none", "page_load"))
        print("    ratios p50 / p95: " + "; ".join(
            f"{a} ÷ {b} {modes[f'ratio_{a}_to_{b}_p50']} / {modes[f'ratio_{a}_to_{b}_p95']}" for a, b in pairs
        ))  # fmt: skip
    if len(which) == 2:
        print(f"  runserver ÷ gunicorn, p50: {report['ratio_runserver_to_gunicorn_p50']}")
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
