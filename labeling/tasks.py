from __future__ import annotations

from celery import shared_task

from labeling.services import images


@shared_task(name="labeling.tasks.image_thumbnail_rebuild")
def image_thumbnail_rebuild(image_id: int) -> bool:
    """Rebuild one image's thumbnail from its stored file (idempotent)."""
    return images.image_thumbnail_rebuild(image_id=image_id)


@shared_task(name="labeling.tasks.export_run")
def export_run(export_id: int) -> bool:
    """Write an export's file (default queue; idempotent: only a queued export is run)."""
    from labeling.services import exports

    return exports.export_run(export_id=export_id)
