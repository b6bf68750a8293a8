"""Every Celery task. Each takes ids, calls one service and is idempotent (acks_late: a killed
worker's task is run again). Each is registered under its name in labeling.queues, the table the
services send by and webapp/celery.py routes by (task_routes: each name to its queue).

Pre-label batches do not depend on redelivery: their leases are in the database, a batch
delivered again does nothing, and `prelabel_jobs_sweep` (Celery beat) hands out what a dead
worker held (labeling.services.prelabel).
"""

from __future__ import annotations

import os
import socket

from celery import shared_task

from labeling import queues
from labeling.services import (
    dashboard,
    exports,
    find_more,
    images,
    imports,
    prelabel,
    prompt_lab,
    segmentation,
)


@shared_task(name=queues.PING.name)
def ping() -> dict:
    """Answered by any worker on the default queue (health checks, the integration tests)."""
    return {"queue": queues.DEFAULT, "host": socket.gethostname(), "pid": os.getpid()}


@shared_task(name=queues.GPU_PING.name)
def gpu_ping() -> dict:
    """Answered by a worker on the gpu queue, with the accelerator it would use."""
    import torch  # here, not at the top: importing the tasks must not load torch

    cuda = torch.cuda.is_available()
    return {
        "queue": queues.GPU,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
    }


@shared_task(name=queues.IMAGE_THUMBNAIL_REBUILD.name)
def image_thumbnail_rebuild(image_id: int) -> bool:
    """Rebuild one image's thumbnail from its stored file (idempotent)."""
    return images.image_thumbnail_rebuild(image_id=image_id)


@shared_task(name=queues.EXPORT_RUN.name)
def export_run(export_id: int) -> bool:
    """Write an export's file (idempotent: only a queued export is run)."""
    return exports.export_run(export_id=export_id)


@shared_task(name=queues.IMPORT_RUN.name)
def import_run(import_id: int) -> bool:
    """Import a dataset file into its project, all or nothing (idempotent: only a queued import is run)."""
    return imports.import_run(import_id=import_id)


@shared_task(name=queues.PRELABEL_JOB_DISPATCH.name)
def prelabel_job_dispatch(job_id: int) -> int:
    """Claim a queued pre-label job and send its first batches to the gpu queue."""
    return prelabel.prelabel_job_dispatch(job_id=job_id)


@shared_task(name=queues.PRELABEL_BATCH_RUN.name, bind=True)
def prelabel_batch_run(self, job_id: int, image_ids: list[int], token: str | None = None) -> dict:
    """Pre-label one batch of a job's images (gpu queue)."""
    worker = f"{self.request.hostname or socket.gethostname()}:{os.getpid()}"
    return prelabel.prelabel_batch_run(job_id=job_id, image_ids=image_ids, token=token, worker=worker)


@shared_task(name=queues.PRELABEL_JOBS_SWEEP.name)
def prelabel_jobs_sweep() -> dict:
    """Run by Celery beat: hands out again the images of lost or dead batches."""
    return prelabel.prelabel_jobs_sweep()


@shared_task(name=queues.EMBEDDINGS_COMPUTE.name)
def embeddings_compute(image_ids: list[int]) -> int:
    """The SAM embeddings the review page asks for (click-to-segment), on the interactive queue."""
    return segmentation.embeddings_compute(image_ids=image_ids)


@shared_task(name=queues.FIND_MORE_RUN.name)
def find_more_run(request_id: int) -> bool:
    """ "Find more like this" on one image: SAM 3 with the request's exemplars (interactive queue)."""
    return find_more.find_more_run(request_id=request_id)


@shared_task(name=queues.DASHBOARD_SNAPSHOT_COMPUTE.name)
def dashboard_snapshot_compute(project_id: int) -> bool:
    """Compute a project's dashboard quality figures into its snapshot (default queue)."""
    return dashboard.dashboard_snapshot_compute(project_id=project_id)


@shared_task(name=queues.PROMPT_LAB_RUN.name)
def prompt_lab_run(run_id: int) -> bool:
    """Measure a prompt lab run's candidates (gpu queue; idempotent: only a queued run is run)."""
    return prompt_lab.prompt_lab_run(run_id=run_id)
