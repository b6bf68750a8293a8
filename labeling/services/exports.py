"""Dataset export (DESIGN.md, flow 4): start, run (Celery task labeling.tasks.export_run), and
the streaming source every format writer reads.

Memory stays bounded however large the project: images are read in id order, ``CHUNK`` at a
time, with one query for the images and one for their annotations (plain ``values_list``
tuples, never model instances), and the writers stream each chunk out before the next.
"""

from __future__ import annotations

import logging
import os
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from .. import queues
from ..formats import coco, voc, yolo
from ..formats.base import (
    FORMATS,
    AnnotationRow,
    ClassRow,
    ExportOptions,
    FormatError,
    ImageRow,
    safe_image_names,
)
from ..models import Annotation, Export, Image, JobStatus, Project

logger = logging.getLogger(__name__)

CHUNK = 2000
EXTENSIONS = {"coco": "json", "yolo_detect": "zip", "yolo_segment": "zip", "voc": "zip"}
Progress = Callable[[int, int], None]  # (images so far, annotations so far)


def extension(fmt: str, options: ExportOptions) -> str:
    return "zip" if fmt == "coco" and options.zip_images else EXTENSIONS[fmt]


class ExportSource:
    """What goes out of a project under some options, read chunk by chunk."""

    def __init__(self, project: Project, options: ExportOptions, *, chunk_size: int = CHUNK) -> None:
        self.project = project
        self.options = options
        self.chunk_size = chunk_size
        classes = list(project.classes.all())
        self.all_classes = [ClassRow(c.pk, c.name, i) for i, c in enumerate(classes)]
        known = {c.pk for c in classes}
        if options.class_ids is not None:
            unknown = set(options.class_ids) - known
            if unknown:
                raise FormatError(
                    f"Option class_ids: unknown class id(s) in this project: {sorted(unknown)}."
                )
            wanted = set(options.class_ids)
        else:
            wanted = known
        self.classes = [c for c in self.all_classes if c.id in wanted]
        condition = Q(state=Annotation.State.ACCEPTED)
        if "proposed" in options.states:
            for c in classes:
                if c.pk in wanted:
                    condition |= Q(
                        state=Annotation.State.PROPOSED,
                        label_class_id=c.pk,
                        score__gte=c.box_threshold if c.box_threshold is not None else project.box_threshold,
                    )
        self.annotation_filter = condition & Q(label_class_id__in=sorted(wanted))

    def annotations(self):
        return Annotation.objects.filter(self.annotation_filter)

    def images(self):
        images = Image.objects.filter(project=self.project)
        if not self.options.include_empty:
            images = images.filter(Exists(self.annotations().filter(image_id=OuterRef("pk"))))
        return images.order_by("id")

    def image_ids(self) -> list[int]:
        """Every exported image id, in order (for the train/val split: 8 bytes-ish per image)."""
        return list(self.images().values_list("id", flat=True))

    def val_ids(self) -> frozenset[int]:
        """The images of the val split: a seeded shuffle, the first round(n × val_ratio)."""
        if self.options.val_ratio <= 0:
            return frozenset()
        ids = self.image_ids()
        random.Random(self.options.seed).shuffle(ids)
        return frozenset(ids[: round(len(ids) * self.options.val_ratio)])

    def chunks(
        self, *, raw_json: bool = False
    ) -> Iterator[tuple[list[ImageRow], dict[int, list[AnnotationRow]]]]:
        """(images, their annotations by image id) per chunk: two queries a chunk.

        With `raw_json`, AnnotationRow.mask and .polygons are the JSON text as stored (None for
        SQL NULL), not decoded: the COCO writer copies them through without decoding them all.
        """
        taken: set[str] = set()
        last = 0
        while True:
            rows = list(
                self.images()
                .filter(id__gt=last)
                .values_list("id", "original_name", "width", "height", "file")[: self.chunk_size]
            )
            if not rows:
                return
            last = rows[-1][0]
            names = safe_image_names(((r[0], r[1]) for r in rows), taken)
            images = [ImageRow(r[0], names[r[0]], r[2], r[3], r[4] or "") for r in rows]
            by_image: dict[int, list[AnnotationRow]] = defaultdict(list)
            fields = ("id", "image_id", "label_class_id", "x", "y", "w", "h", "mask", "polygons", "score")
            annotations = self.annotations()
            if raw_json:
                annotations = annotations.annotate(
                    mask_text=Cast("mask", TextField()), polygons_text=Cast("polygons", TextField())
                )
                fields = (*fields[:7], "mask_text", "polygons_text", "score")
            for row in (
                annotations.filter(image_id__in=[r[0] for r in rows])
                .order_by("image_id", "id")
                .values_list(*fields)
            ):
                by_image[row[1]].append(AnnotationRow(*row))
            yield images, by_image


WRITERS = {
    "coco": coco.write,
    "yolo_detect": yolo.write_detect,
    "yolo_segment": yolo.write_segment,
    "voc": voc.write,
}


def export_write(
    *,
    project: Project,
    fmt: str,
    options: ExportOptions,
    out: str | os.PathLike,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Write the export to `out` (atomically: a temporary file renamed at the end).

    Returns (image count, annotation count). FormatError on bad options.
    """
    if fmt not in FORMATS:
        raise FormatError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    source = ExportSource(project, options)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex}.part")
    try:
        counts = WRITERS[fmt](source, partial, progress or (lambda images, annotations: None))
        os.replace(partial, out)
    finally:
        if partial.exists():
            partial.unlink()
    return counts


# Service: start and run -------------------------------------------------------------------------


def export_start(*, project: Project, user, fmt: str, options: ExportOptions) -> Export:
    """Create an export and enqueue its task once the transaction commits (ValidationError on bad input)."""
    if fmt not in FORMATS:
        raise ValidationError({"format": f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}."})
    try:
        ExportSource(project, options)  # validates the classes
    except FormatError as exc:
        raise ValidationError(str(exc)) from exc
    with transaction.atomic():
        export = Export.objects.create(
            project=project,
            format=fmt,
            options=options.to_json(),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        transaction.on_commit(lambda: _enqueue(export.pk))
    return export


def _enqueue(export_id: int) -> None:
    try:
        queues.task_send(task=queues.EXPORT_RUN, args=[export_id])
    except Exception as exc:  # broker down: say so on the export instead of leaving it queued
        logger.exception("Export %s could not be queued", export_id)
        _finish(export_id, JobStatus.FAILED, error=f"The task queue could not be reached: {exc}")


def _finish(export_id: int, status: str, **fields) -> None:
    Export.objects.filter(pk=export_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=status, finished_at=timezone.now(), **fields
    )


def export_path(export: Export) -> tuple[str, Path]:
    """The storage name and the path on disk of an export's file."""
    options = ExportOptions.from_json(export.options)
    name = f"exports/{export.project_id}/{export.pk}.{extension(export.format, options)}"
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
        name, path = export_path(export)
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


# Selectors ----------------------------------------------------------------------------------------


def project_exports(*, project: Project, limit: int = 10) -> list[Export]:
    return list(Export.objects.filter(project=project).order_by("-created_at", "-id")[:limit])
