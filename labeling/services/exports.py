"""Dataset export (docs/architecture.md, "Flows" 5): start, run (Celery task labeling.tasks.export_run), and
write the file: the format's writer (labeling.formats.registry) reads the rows from
labeling.selectors.exports.ExportSource and streams them out, chunk by chunk.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import queues
from ..formats.base import ExportOptions, FormatError, Progress
from ..formats.registry import export_format
from ..models import Export, JobStatus, Project
from ..selectors.exports import ExportSource

logger = logging.getLogger(__name__)


def export_write(
    *,
    project: Project,
    fmt: str,
    options: ExportOptions,
    out: str | os.PathLike,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Write the export to `out` (atomically: a temporary file renamed at the end).

    Returns (image count, annotation count). FormatError on an unknown format or bad options.
    """
    writer = export_format(fmt).write
    source = ExportSource(project, options)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex}.part")
    try:
        counts = writer(source, partial, progress or (lambda images, annotations: None))
        os.replace(partial, out)
    finally:
        if partial.exists():
            partial.unlink()
    return counts


# Service: start and run -------------------------------------------------------------------------


def export_start(*, project: Project, user, fmt: str, options: ExportOptions) -> Export:
    """Create an export and enqueue its task once the transaction commits (ValidationError on bad input)."""
    try:
        found = export_format(fmt)
    except FormatError as exc:
        raise ValidationError({"format": str(exc)}) from exc
    try:
        source = ExportSource(project, options)  # validates the classes
        if found.check is not None:
            found.check(source)  # e.g. YOLO: a split with val and train images
    except FormatError as exc:
        raise ValidationError(str(exc)) from exc
    with transaction.atomic():
        export = Export.objects.create(
            project=project,
            format=fmt,
            options=options.to_json(),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        queues.task_send_on_commit(
            task=queues.EXPORT_RUN,
            args=[export.pk],
            failed=lambda reason: _finish(export.pk, JobStatus.FAILED, error=reason),
        )
    return export


def _finish(export_id: int, status: str, **fields) -> None:
    Export.objects.filter(pk=export_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=status, finished_at=timezone.now(), **fields
    )


def export_path(*, export: Export) -> tuple[str, Path]:
    """The storage name and the path on disk of an export's file (FormatError when its format or
    options are not valid any more)."""
    options = ExportOptions.from_json(export.options)
    extension = export_format(export.format).export_extension(options)
    name = f"exports/{export.project_id}/{export.pk}.{extension}"
    return name, Path(settings.MEDIA_ROOT) / name


def export_run(*, export_id: int) -> bool:
    """Run a queued export (the Celery task calls this). False when it was not queued (idempotent)."""
    claimed = Export.objects.filter(pk=export_id, status=JobStatus.QUEUED).update(status=JobStatus.RUNNING)
    if not claimed:
        return False
    export = Export.objects.select_related("project").get(pk=export_id)

    def progress(images: int, annotations: int) -> None:
        Export.objects.filter(pk=export_id).update(image_count=images, annotation_count=annotations)

    try:
        options = ExportOptions.from_json(export.options)
        name, path = export_path(export=export)
        images, annotations = export_write(
            project=export.project, fmt=export.format, options=options, out=path, progress=progress
        )
    except Exception as exc:
        logger.exception("Export %s failed", export_id)
        message = str(exc) if isinstance(exc, FormatError) else f"{type(exc).__name__}: {exc}"
        _finish(export_id, JobStatus.FAILED, error=message[:2000])
        return True
    _finish(
        export_id, JobStatus.SUCCEEDED, file=name, image_count=images, annotation_count=annotations, error=""
    )
    return True
