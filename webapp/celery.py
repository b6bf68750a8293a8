"""The Celery app. The queues ("default", "gpu", "interactive") and which task goes to which are
one table, labeling.queues; the tasks are in labeling/tasks.py. Celery beat runs the pre-label
sweeper every LABELGPT_SWEEP_SECONDS."""

import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from kombu import Exchange, Queue

from labeling import queues, worker_beat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("labelgpt")
app.config_from_object("django.conf:settings", namespace="CELERY")


def _configure() -> None:
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=queues.DEFAULT,
        task_queues=tuple(Queue(name, Exchange(name), routing_key=name) for name in queues.QUEUES),
        task_routes=queues.task_routes(),
        # A task is acknowledged only once it has finished, and is given back to the queue when
        # its worker dies, so a killed worker loses no work (tasks are idempotent).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
        task_time_limit=settings.CELERY_TASK_TIME_LIMIT,
        task_ignore_result=settings.CELERY_RESULT_BACKEND is None,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "prelabel-sweep": {
                "task": queues.PRELABEL_JOBS_SWEEP.name,
                "schedule": float(settings.LABELGPT_SWEEP_SECONDS),
                # A sweep not run by the next one is useless: never let them pile up.
                "options": {"expires": float(settings.LABELGPT_SWEEP_SECONDS)},
            }
        },
        beat_schedule_filename=str(settings.CELERY_BEAT_SCHEDULE_FILE),
    )
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        # Embedded default: messages are files under var/broker, shared by web and worker.
        folder = settings.CELERY_BROKER_DIR
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        app.conf.broker_transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
        # The filesystem transport has no broadcast exchange: no remote control, gossip, mingle.
        app.conf.worker_enable_remote_control = False
    elif settings.CELERY_BROKER_URL.startswith("redis"):
        # Long GPU tasks must not be redelivered while still running (acks_late); a redelivered
        # pre-label batch finds its images claimed and does nothing anyway.
        options = {"visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT}
        if settings.CELERY_BROKER_KEYPREFIX:
            options["global_keyprefix"] = settings.CELERY_BROKER_KEYPREFIX
            app.conf.result_backend_transport_options = {"global_keyprefix": settings.CELERY_BROKER_KEYPREFIX}
        app.conf.broker_transport_options = options


@worker_ready.connect
def _worker_ready(sender, **kwargs) -> None:
    """Every worker writes a sign of life to the database (any broker; see labeling.worker_beat)."""
    worker_beat.start(hostname=sender.hostname, queues=sorted(sender.app.amqp.queues.consume_from))


@worker_shutdown.connect
def _worker_shutdown(sender, **kwargs) -> None:
    worker_beat.stop()


_configure()
app.autodiscover_tasks()
