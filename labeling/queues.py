"""Every Celery task's name and queue, in one table.

labeling/tasks.py registers each task under the name given here, webapp/celery.py routes each
name to its queue from this table, and the services enqueue through `task_send`, which sends by
name: services never import labeling.tasks (the tasks import the services, never the other way).

Queues: "default" (light work: thumbnails, exports, imports, the pre-label sweeper, the
dashboard's quality snapshot), "gpu" (pre-label
batches, prompt lab runs) and "interactive" (model work a user is waiting for: the SAM embeddings
of the image under review, "find more like this"), so that an export, an embedding and a
pre-label batch never wait behind one another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from celery import current_app
from celery.exceptions import CeleryError
from celery.result import AsyncResult, EagerResult
from django.db import transaction
from kombu.exceptions import KombuError

logger = logging.getLogger(__name__)

DEFAULT = "default"
GPU = "gpu"
INTERACTIVE = "interactive"
QUEUES = (DEFAULT, GPU, INTERACTIVE)


@dataclass(frozen=True)
class TaskRoute:
    name: str
    queue: str

    @property
    def short_name(self) -> str:
        """The task's function name in labeling/tasks.py."""
        return self.name.rsplit(".", 1)[-1]


PING = TaskRoute("labeling.tasks.ping", DEFAULT)
GPU_PING = TaskRoute("labeling.tasks.gpu_ping", GPU)
IMAGE_THUMBNAIL_REBUILD = TaskRoute("labeling.tasks.image_thumbnail_rebuild", DEFAULT)
EXPORT_RUN = TaskRoute("labeling.tasks.export_run", DEFAULT)
IMPORT_RUN = TaskRoute("labeling.tasks.import_run", DEFAULT)
PRELABEL_JOB_DISPATCH = TaskRoute("labeling.tasks.prelabel_job_dispatch", DEFAULT)
PRELABEL_BATCH_RUN = TaskRoute("labeling.tasks.prelabel_batch_run", GPU)
PRELABEL_JOBS_SWEEP = TaskRoute("labeling.tasks.prelabel_jobs_sweep", DEFAULT)
EMBEDDINGS_COMPUTE = TaskRoute("labeling.tasks.embeddings_compute", INTERACTIVE)
FIND_MORE_RUN = TaskRoute("labeling.tasks.find_more_run", INTERACTIVE)
DASHBOARD_SNAPSHOT_COMPUTE = TaskRoute("labeling.tasks.dashboard_snapshot_compute", DEFAULT)
PROMPT_LAB_RUN = TaskRoute("labeling.tasks.prompt_lab_run", GPU)

TASKS = (
    PING,
    GPU_PING,
    IMAGE_THUMBNAIL_REBUILD,
    EXPORT_RUN,
    IMPORT_RUN,
    PRELABEL_JOB_DISPATCH,
    PRELABEL_BATCH_RUN,
    PRELABEL_JOBS_SWEEP,
    EMBEDDINGS_COMPUTE,
    FIND_MORE_RUN,
    DASHBOARD_SNAPSHOT_COMPUTE,
    PROMPT_LAB_RUN,
)


def task_routes() -> dict[str, dict[str, str]]:
    """Celery's `task_routes`: each task name → its queue (so `apply_async` lands there too)."""
    return {task.name: {"queue": task.queue} for task in TASKS}


class QueueUnavailable(Exception):
    """The task queue (the broker) cannot be reached: the task was not sent. Its message is the
    one users see (no broker address); the broker's own error is its __cause__ and in the log."""

    def __init__(self, message: str = "The task queue cannot be reached; try again in a moment.") -> None:
        super().__init__(message)


# What sending raises when the broker is down or refuses: kombu wraps the transport's connection
# errors (redis' included) in its OperationalError; a socket error may still come through as is.
BROKER_ERRORS = (KombuError, CeleryError, OSError)


def task_send(*, task: TaskRoute, args: Sequence = ()) -> AsyncResult | EagerResult:
    """Send `task` with these arguments to its queue, by name. With CELERY_TASK_ALWAYS_EAGER the
    task runs here and now instead, as `.delay()` would (send_task ignores that setting).

    Raises QueueUnavailable when the broker cannot be reached (the one place that tells a broker
    error from the others: callers catch only that)."""
    app = current_app
    if app.conf.task_always_eager:
        app.loader.import_default_modules()  # the task modules (autodiscovery), as a worker does
        return app.tasks[task.name].apply(args=list(args))
    try:
        return app.send_task(task.name, args=list(args), queue=task.queue)
    except BROKER_ERRORS as exc:
        logger.error(
            "Task %s could not be sent to queue %s: %s: %s", task.name, task.queue, type(exc).__name__, exc
        )
        raise QueueUnavailable() from exc


def task_send_on_commit(*, task: TaskRoute, args: Sequence, failed: Callable[[str], None]) -> None:
    """Send `task` once the current transaction commits (a worker then finds the rows it reads).
    When the queue cannot be reached, `failed(reason)` records it on the row the task would have
    worked on (a job, an export, an import), which would otherwise stay queued for ever."""

    def send() -> None:
        try:
            task_send(task=task, args=args)
        except QueueUnavailable as exc:
            logger.exception("%s%s could not be queued", task.short_name, list(args))
            failed(str(exc))

    transaction.on_commit(send)
