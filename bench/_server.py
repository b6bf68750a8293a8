"""Shared helpers of the benchmarks that run the app and drive it in Chromium (demo.py,
review_keys.py): a throwaway folder with the environment of `make run`, and the app served from
it. The browser side (Chromium, the login form, the review page's conditions) is
tests/e2e/browser.py, shared with the e2e tests.

Nothing here imports Django: the benchmarks call `django.setup()` once the environment is set.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USERNAME = "bench"  # the staff user each benchmark creates in its throwaway database
# The variables that would point the app at a shared database, broker or cache: unset, the app
# uses its embedded defaults (SQLite and the filesystem broker under LABELGPT_VAR_DIR), as `make run`.
SHARED_SERVICES = ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "REDIS_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_app_env(work_dir: Path, **settings: str) -> None:
    """Empty `work_dir` (made again) and set this process's environment, which the app's
    subprocesses inherit, to the app's embedded defaults with its data under `work_dir`, DEBUG on
    and `settings` on top."""
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    env = {
        **os.environ,
        "LABELGPT_VAR_DIR": str(work_dir),
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        **settings,
    }
    for name in SHARED_SERVICES:
        env.pop(name, None)
    os.environ.clear()
    os.environ.update(env)


def manage(*arguments: str) -> None:
    """Run `manage.py <arguments>` to the end (an error stops the benchmark)."""
    subprocess.run([sys.executable, "manage.py", *arguments], cwd=ROOT, check=True)


def wait_http(url: str, seconds: float, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the app stopped while starting (exit {server.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own local server)
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


@contextmanager
def app_served(arguments: list[str], *, port: int, log: Path, start_s: float) -> Iterator[str]:
    """`manage.py <arguments>` (serving on `port`) in its own process group, its output in `log`;
    yields the base URL once /healthz/ answers (within `start_s` seconds), and stops the whole
    group on the way out (SIGTERM, then SIGKILL after 30 s)."""
    command = [sys.executable, "manage.py", *arguments]
    with command_served(command, port=port, log=log, start_s=start_s) as url:
        yield url


@contextmanager
def command_served(command: list[str], *, port: int, log: Path, start_s: float) -> Iterator[str]:
    """`command` (a server of the app on `port`: manage.py, gunicorn) run from the repository in
    its own process group, its output in `log`; yields the base URL once /healthz/ answers (within
    `start_s` seconds), and stops the whole group on the way out (SIGTERM, then SIGKILL after 30 s)."""
    with log.open("w") as output:
        server = subprocess.Popen(
            command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base_url}/healthz/", start_s, server)
            yield base_url
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
