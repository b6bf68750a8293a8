"""What the browser tests (tests/e2e) and the browser benchmarks (bench/demo.py,
bench/review_keys.py) share: Debian's headless Chromium driven by Playwright, a page of the
review workspace's size, the login form, the review page's "drawn" and "saved" conditions, and
the crowd of annotations of the 1,000-annotation image.

Nothing here imports Django or the app: a benchmark imports it before `django.setup()`.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
VIEWPORT = {"width": 1280, "height": 900}


@contextmanager
def chromium() -> Iterator[object]:
    """Chromium, launched through Playwright and closed on the way out.

    Playwright's sync API keeps an asyncio loop running in this thread while it is up, so Django
    would refuse the plain synchronous ORM calls made here meanwhile: DJANGO_ALLOW_ASYNC_UNSAFE
    is set for that time only, and put back as it was afterwards.
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def new_page(browser, base_url: str, *, timeout_ms: float, **options):
    """A page in a fresh browser context (no cookies) of VIEWPORT's size, whose relative URLs go
    to `base_url`; `options` are more of `browser.new_context`'s (`page.context` closes it)."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base_url, **options)
    context.set_default_timeout(timeout_ms)
    return context.new_page()


def log_in(page, username: str, password: str) -> None:
    """Log in through the login form and wait for the project list (LOGIN_REDIRECT_URL)."""
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))


def wait_for_review(page) -> None:
    """Until the review page's script has started, the image is drawn and the next image's prefetch
    has settled (its requests done: they would otherwise land in the middle of a test)."""
    # A function, not an expression: the page's CSP forbids eval, which a string expression needs.
    page.wait_for_function(
        "() => window.labelgpt && window.labelgpt.canvas.loaded && window.labelgpt.canvas.stats.frames > 0"
        " && window.labelgpt.timing.peeked !== null"
    )


def wait_saved(page) -> None:
    """Until every edit has been answered by the server."""
    page.wait_for_function(
        "() => window.labelgpt.review.queue.pending === 0 && !window.labelgpt.review.queue.busy"
    )


def crowd(count: int, width: float, height: float, *, seed: int = 7) -> list[dict]:
    """`count` random diamonds of 8-60 px inside a width × height image, seeded: the fields of a
    proposed Annotation each (x, y, w, h, polygons, score), for the review page of a crowded image."""
    rng = random.Random(seed)
    fields = []
    for _ in range(count):
        w, h = rng.uniform(8, 60), rng.uniform(8, 60)
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        ring = [x, y + h / 2, x + w / 2, y, x + w, y + h / 2, x + w / 2, y + h]
        fields.append({"x": x, "y": y, "w": w, "h": h, "polygons": [[ring]], "score": rng.uniform(0.4, 1.0)})
    return fields
