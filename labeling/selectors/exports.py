"""Export reads: the exports of a project, and the streaming source every format writer reads.

Memory stays bounded however large the project: images are read in id order, ``CHUNK`` at a
time, with one query for the images and one for their annotations (plain ``values_list``
tuples, never model instances), and the writers stream each chunk out before the next.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from django.db.models import Exists, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast

from ..formats.base import (
    IMAGE_STATUSES,
    AnnotationRow,
    ClassRow,
    ExportOptions,
    FormatError,
    ImageRow,
    safe_image_names,
    val_split,
)
from ..models import Annotation, Export, Image, Project

CHUNK = 2000


def export_list(*, project: Project) -> QuerySet[Export]:
    """The project's exports, newest first."""
    return Export.objects.filter(project=project).order_by("-created_at", "-id")


class ExportSource:
    """What goes out of a project under some options, read chunk by chunk (formats.base.Source).

    FormatError when options.class_ids names a class the project does not have.
    """

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
        statuses = IMAGE_STATUSES[self.options.images]
        if statuses is not None:
            images = images.filter(status__in=statuses)
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
        return val_split(self.image_ids(), self.options.val_ratio, self.options.seed)

    def chunks(
        self, *, raw_json: bool = False
    ) -> Iterator[tuple[list[ImageRow], dict[int, list[AnnotationRow]]]]:
        """(images, their annotations by image id) per chunk: two queries a chunk.

        With `raw_json`, AnnotationRow.mask and .polygons are the JSON text as stored (None for
        SQL NULL), not decoded: the COCO writer decodes them with orjson, faster than the json module.
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
