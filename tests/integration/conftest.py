"""A real Celery worker process on a test-only Redis database, sharing the test's DB and media.

The worker runs `python -m celery -A webapp worker -Q default,gpu ...` as a subprocess with:

- CELERY_BROKER_URL / CELERY_RESULT_BACKEND: the Redis of REDIS_URL, with every key under a
  prefix of its own for each test (CELERY_BROKER_KEYPREFIX, kombu's `global_keyprefix`): a stray
  worker of an earlier run, or another project's, cannot take this test's tasks, and the keys are
  deleted afterwards;
- DATABASE_URL: pytest-django's *test* database (`test_<name>`), so the worker sees the rows a
  `transactional_db` test has committed;
- MEDIA_ROOT: the per-test media folder set by the autouse fixture in tests/conftest.py.

The test process sends to the same broker: `webapp.celery_app.conf` is pointed there for the
test and restored afterwards.

`prelabel_worker_process` is the same worker set up for pre-labeling: the tiny models (built once
per session, so the worker never builds them), batches of one image, a 5-second Redis visibility
timeout (the message of a killed worker comes back soon, and must then change nothing), a worker
heartbeat every second, and short batch leases for the sweeper, which the tests run themselves.

Needs REDIS_URL, a reachable Redis and PostgreSQL. Without them the tests are skipped, except
under CI=true, where a missing service is an error. SQLite is skipped (with the same CI rule):
a separate process cannot reliably see pytest's SQLite test database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import kombu.pools
import pytest
import redis
from celery.exceptions import TimeoutError as CeleryTimeoutError

from scripts.run_tests import reachable
from webapp import celery_app

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
WORKER_ARGS = (
    "-A", "webapp", "worker", "-Q", "default,gpu", "--concurrency", "1", "--pool", "prefork",
    "-l", "INFO", "--without-gossip", "--without-mingle",
)  # fmt: skip


def _unavailable(reason: str):
    """Skip, or fail under CI=true: CI must never pass by skipping what it is meant to check."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the integration tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def integration_services():
    """The Redis URL to use; skips (or fails under CI) when a needed service is missing."""
    from django.conf import settings

    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        _unavailable("REDIS_URL is not set: the Celery worker tests need Redis (see scripts/run_tests.py)")
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis at {redis_url} does not answer: {exc}")
    database = settings.DATABASES["default"]
    if "postgresql" not in database["ENGINE"]:
        _unavailable(
            f"the Celery worker tests need PostgreSQL (DATABASE_URL=postgres://...), not "
            f"{database['ENGINE']}: a separate worker process cannot reliably see pytest's SQLite test DB"
        )
    host, port = database.get("HOST") or "127.0.0.1", int(database.get("PORT") or 5432)
    if not host.startswith("/") and not reachable(host, port, timeout=2):
        _unavailable(f"PostgreSQL at {host}:{port} does not answer")
    return redis_url


def test_database_url(settings_dict: dict) -> str:
    """A DATABASE_URL (as webapp/settings.py parses it) for the given connection settings."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or ""
    host = quote(host, safe="") if host.startswith("/") else host
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(settings_dict['NAME'], safe='')}"


test_database_url.__test__ = False  # a helper, not a test


def _reset_connections() -> None:
    """Forget the app's cached broker pools and result backend (they hold the old URLs)."""
    kombu.pools.reset()  # closes and forgets every broker pool of this (test) process
    backend = celery_app._backend
    if backend is not None and hasattr(backend, "client"):
        backend.client.connection_pool.disconnect()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app._backend_cache = None
    if hasattr(celery_app._local, "backend"):
        del celery_app._local.backend


class Broker:
    """The test's Redis broker: a client, and the prefix of every key this test's Celery uses."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def keys(self) -> list[bytes]:
        return list(self.client.scan_iter(match=f"{self.prefix}*", count=1000))

    def drop_messages(self, queue: str) -> int:
        """Lose every message of `queue`, waiting or delivered and not acknowledged (as a Redis
        restart without persistence, or a bug, would): the number of messages lost."""
        lost = 0
        for key in self.client.scan_iter(match=f"{self.prefix}{queue}*"):
            if self.client.type(key) == b"list":
                lost += self.client.llen(key)
                self.client.delete(key)
        unacked, index = f"{self.prefix}unacked", f"{self.prefix}unacked_index"
        lost += self.client.hlen(unacked)
        self.client.delete(unacked, index)
        return lost

    def close(self) -> None:
        keys = self.keys()
        if keys:
            self.client.delete(*keys)
        self.client.close()


@pytest.fixture
def celery_redis(integration_services, settings, monkeypatch):
    """Point the test process's Celery app at the test's own namespace of the Redis of REDIS_URL."""
    prefix = f"labelgpt-itest-{uuid.uuid4().hex[:12]}:"
    broker_url = backend_url = integration_services
    settings.CELERY_BROKER_URL = broker_url
    settings.CELERY_RESULT_BACKEND = backend_url
    settings.CELERY_BROKER_KEYPREFIX = prefix
    settings.CELERY_TASK_ALWAYS_EAGER = False
    conf = celery_app.conf
    keys = (
        "broker_url",
        "result_backend",
        "task_ignore_result",
        "task_always_eager",
        "broker_transport_options",
        "result_backend_transport_options",
    )
    saved = {key: conf[key] for key in keys}
    _reset_connections()
    conf.update(
        broker_url=broker_url,
        result_backend=backend_url,
        task_ignore_result=False,
        task_always_eager=False,
        broker_transport_options={"visibility_timeout": 3600, "global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
    )
    # Each task's ignore_result was fixed from task_ignore_result (True: no backend configured
    # here) when the task was bound; with a backend now, let the results come back.
    for task in celery_app.tasks.values():
        monkeypatch.setattr(task, "ignore_result", False)
    broker = Broker(broker_url, prefix)
    yield broker
    _reset_connections()
    conf.update(saved)
    broker.close()


class Worker:
    """A `celery worker` subprocess: start() waits until it answers a ping, stop() ends it.
    `queues`: what it consumes besides "default" (where the ping goes), as `-Q` takes them."""

    def __init__(
        self, *, env: dict[str, str], log_path: Path, name: str = "itest", queues: str = "default,gpu"
    ) -> None:
        self.env = env
        self.queues = queues
        self.log_path = log_path
        self.name = name
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, *, ready: bool = True) -> None:
        """Start it and wait until it answers a ping (`ready=False`: until it logs that it is
        ready, for a worker that cannot hear this test's ping)."""
        from labeling.tasks import ping

        assert self.proc is None, "the worker is already running"
        self._log = self.log_path.open("ab")
        logged_before = len(self.log())
        args = list(WORKER_ARGS)
        args[args.index("-Q") + 1] = self.queues
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", *args, "--hostname", f"{self.name}-{os.getpid()}@%h"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the pool children go with it
        )
        result = ping.apply_async() if ready else None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if result is not None:
                try:
                    result.get(timeout=1)
                    return
                except CeleryTimeoutError:
                    pass
            else:
                if " ready." in self.log()[logged_before:]:
                    return
                time.sleep(0.2)
            if self.proc.poll() is not None:
                pytest.fail(f"the Celery worker exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the Celery worker was not ready in {READY_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown: finish the running task
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.proc = None
        self._log.close()

    def kill(self) -> None:
        """SIGKILL the worker and its pool children (its whole process group), as the OOM killer
        or a lost machine would: no warm shutdown, no acknowledgement of the running task."""
        assert self.proc is not None, "the worker is not running"
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.proc = None
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else "(no log)"


_failed_key = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember whether any phase of a test failed, so the worker fixture can show its log."""
    report = yield
    if report.failed:
        item.stash[_failed_key] = True
    return report


@pytest.fixture
def celery_worker_process(request, transactional_db, celery_redis, _media_root, tmp_path):
    """A stopped worker on the test broker, DB and media; call .start() (the test may send first)."""
    from django.conf import settings
    from django.db import connection

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": test_database_url(connection.settings_dict),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
        "CELERY_BROKER_KEYPREFIX": settings.CELERY_BROKER_KEYPREFIX,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "LABELGPT_VAR_DIR": str(tmp_path / "var"),
        "DB_CONN_MAX_AGE": "0",  # no idle connection left behind to block the test DB's teardown
        "PYTHONUNBUFFERED": "1",
    }
    worker = Worker(env=env, log_path=tmp_path / "celery-worker.log")
    yield worker
    worker.stop()
    if request.node.stash.get(_failed_key, False):
        print(f"----- Celery worker log ({worker.log_path}) -----\n{worker.log()}")


@pytest.fixture
def celery_worker(celery_worker_process):
    """A running worker (it has answered a ping)."""
    celery_worker_process.start()
    return celery_worker_process


VISIBILITY_TIMEOUT_S = 5
LEASE_S = 5  # batch lease of the sweeper the tests run (in the test process); a busy CI machine
# can starve a heartbeat thread for a few seconds: a shorter lease then hands out a live batch again


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """LABELGPT_MODELS_DIR with the tiny models under tiny/ (the same folder the labeling tests use)."""
    from tests.labeling.conftest import build_tiny_models_dir

    return build_tiny_models_dir(tmp_path_factory.getbasetemp() / "labelgpt-models")


@pytest.fixture
def prelabel_worker_process(celery_worker_process, settings, tiny_models_dir):
    """A stopped worker for pre-label jobs; this process starts the jobs with the same settings."""
    settings.LABELGPT_MODELS = "tiny"
    settings.LABELGPT_MODELS_DIR = tiny_models_dir
    settings.LABELGPT_DEVICE = "cpu"
    settings.LABELGPT_EMBEDDINGS_DIR = ""
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 1  # jobs snapshot it when they start
    settings.LABELGPT_BATCH_LEASE_SECONDS = LEASE_S
    settings.LABELGPT_WORKER_BEAT_SECONDS = 1
    celery_worker_process.env.update(
        {
            "LABELGPT_MODELS": "tiny",
            "LABELGPT_MODELS_DIR": str(tiny_models_dir),
            "LABELGPT_DEVICE": "cpu",
            "LABELGPT_EMBEDDINGS_DIR": "",  # MEDIA_ROOT/embeddings: the test's media
            "LABELGPT_PRELABEL_BATCH_SIZE": "1",
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
            "LABELGPT_BATCH_LEASE_SECONDS": str(LEASE_S),
            "LABELGPT_WORKER_BEAT_SECONDS": "1",
            "HF_HUB_OFFLINE": "1",  # never wait on the network for weights
            "TRANSFORMERS_OFFLINE": "1",
        }
    )
    return celery_worker_process
