"""Celery tasks: the one bridge between the model code (plain Python) and Django.

Tasks whose name starts with "gpu_" are routed to the "gpu" queue, those starting with
"interactive_" to the "interactive" queue (work a user waits for, which a pre-label batch on "gpu"
must not hold up) (webapp/celery.py). Each task
takes ids, calls one service, and is idempotent (acks_late: a killed worker's task is re-run).
Pre-label batches do not depend on that: their leases are in the database, a batch delivered
again does nothing, and `prelabel_sweep` (Celery beat) hands out what a dead worker held.
"""

from __future__ import annotations

import os
import socket

from celery import shared_task


@shared_task(name="inference.tasks.ping")
def ping() -> dict:
    """Answered by any worker on the default queue (health checks, the dashboard)."""
    return {"queue": "default", "host": socket.gethostname(), "pid": os.getpid()}


@shared_task(name="inference.tasks.gpu_ping")
def gpu_ping() -> dict:
    """Answered by a worker on the gpu queue, with the accelerator it would use."""
    import torch  # imported here: the web process never needs torch for this

    cuda = torch.cuda.is_available()
    return {
        "queue": "gpu",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
    }


@shared_task(name="inference.tasks.prelabel_job_dispatch")
def prelabel_job_dispatch(job_id: int) -> int:
    from labeling.services import prelabel

    return prelabel.prelabel_job_dispatch(job_id=job_id)


@shared_task(name="inference.tasks.gpu_prelabel_batch", bind=True)
def gpu_prelabel_batch(self, job_id: int, image_ids: list[int], token: str | None = None) -> dict:
    from labeling.services import prelabel

    worker = f"{self.request.hostname or socket.gethostname()}:{os.getpid()}"
    return prelabel.prelabel_batch_run(job_id=job_id, image_ids=image_ids, token=token, worker=worker)


@shared_task(name="inference.tasks.prelabel_sweep")
def prelabel_sweep() -> dict:
    """Run by Celery beat: hands out again the images of lost or dead batches (labeling.prelabel)."""
    from labeling.services import prelabel

    return prelabel.prelabel_jobs_sweep()


@shared_task(name="inference.tasks.interactive_embed_images")
def interactive_embed_images(image_ids: list[int]) -> int:
    """The SAM embeddings the review page asks for (click-to-segment), on the "interactive" queue."""
    from labeling.services import segmentation

    return segmentation.embeddings_compute(image_ids=image_ids)
