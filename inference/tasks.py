"""Celery tasks of the inference app: the one bridge between model code and Django models.

Tasks whose name starts with "gpu_" are routed to the "gpu" queue (webapp/celery.py).
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
