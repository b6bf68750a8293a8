from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="labeling.tasks.image_thumbnail_rebuild")
def image_thumbnail_rebuild(image_id: int) -> bool:
    """Rebuild one image's thumbnail from its stored file (idempotent)."""
    return services.image_thumbnail_rebuild(image_id=image_id)
