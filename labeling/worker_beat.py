"""A Celery worker's sign of life in the database (labeling.models.WorkerBeat), written every
LABELGPT_WORKER_BEAT_SECONDS by a thread of the worker's main process: `prelabel --wait`, the
sweeper and the jobs panel can tell whether anything consumes a queue, whatever the broker (the
filesystem broker has no remote control, so `celery inspect ping` cannot answer there)."""

from __future__ import annotations

import logging
import os
import threading

from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)

_stop = threading.Event()
_hostname = ""


def worker_beat_model():
    """The WorkerBeat model, looked up once the app registry is ready: webapp/celery.py imports
    this module before Django is set up (it connects the worker signals to it)."""
    return apps.get_model("labeling", "WorkerBeat")


def beat(*, hostname: str, queues: list[str], started_at=None) -> None:
    now = timezone.now()
    # started_at is this process's: a worker restarted under the same name (its predecessor was
    # killed and left its row) is new, and the sweeper gives a new worker time to reach the queue.
    worker_beat_model().objects.update_or_create(
        hostname=hostname[:200],
        defaults={
            "queues": ",".join(queues)[:200],
            "pid": os.getpid(),
            "seen_at": now,
            "started_at": started_at or now,
        },
    )


def start(*, hostname: str, queues: list[str]) -> None:
    """Beat now, then every LABELGPT_WORKER_BEAT_SECONDS until `stop()` (daemon thread)."""
    global _hostname
    _hostname = hostname
    _stop.clear()
    started_at = timezone.now()

    def run() -> None:
        while True:
            try:
                close_old_connections()
                beat(hostname=hostname, queues=queues, started_at=started_at)
            except Exception:  # a database hiccup must not end the beats
                logger.exception("Worker %s: could not write its heartbeat", hostname)
            finally:
                connection.close()  # this thread's connection: never left idle in a transaction
            if _stop.wait(settings.LABELGPT_WORKER_BEAT_SECONDS):
                return

    threading.Thread(target=run, name="labelgpt-worker-beat", daemon=True).start()


def stop() -> None:
    """A warm shutdown: the worker is gone at once, not after three silent beats."""
    _stop.set()
    if _hostname:
        try:
            worker_beat_model().objects.filter(hostname=_hostname[:200]).delete()
        except Exception:
            logger.exception("Worker %s: could not remove its heartbeat", _hostname)
