"""Reads. Each selector makes a constant number of queries whatever the project's size."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from ..models import Annotation, Image, Project
from .projects import count_of, project_counts


def image_status_counts(*, project: Project) -> dict[str, int]:
    """{status: n, ..., "all": n} from the project's counts row (one query, no COUNT)."""
    row = project_counts(project=project)
    counts = {status: getattr(row, f"images_{status}") for status in Image.Status.values}
    counts["all"] = sum(counts.values())
    return counts


def image_list(*, project: Project, status: str | None = None) -> QuerySet[Image]:
    images = project.images.only(
        "id", "project_id", "thumbnail", "original_name", "width", "height", "status", "created_at"
    ).order_by("id")
    if status:
        images = images.filter(status=status)
    return images


def images_with_counts(
    *,
    project: Project,
    status: str | None = None,
    class_id: int | None = None,
    has_proposals: bool | None = None,
) -> QuerySet[Image]:
    """The project's images by id, each with its annotation and open-proposal counts: those with
    the given status, with an annotation of the class, and with (True) or without (False) open
    proposals; None: no filter on that."""
    images = _with_counts(Image.objects.filter(project=project)).order_by("id")
    if status is not None:
        images = images.filter(status=status)
    if class_id is not None:
        images = images.filter(
            Exists(Annotation.objects.filter(image=OuterRef("pk"), label_class_id=class_id))
        )
    if has_proposals is not None:
        proposed = Exists(Annotation.objects.filter(image=OuterRef("pk"), state=Annotation.State.PROPOSED))
        images = images.filter(proposed if has_proposals else ~proposed)
    return images


def image_with_counts(*, image_id: int) -> Image:
    return _with_counts(Image.objects.filter(pk=image_id)).get()


def _with_counts(images: QuerySet[Image]) -> QuerySet[Image]:
    return images.annotate(
        annotation_count=count_of(Annotation.objects, "image"),
        proposal_count=count_of(Annotation.objects, "image", state=Annotation.State.PROPOSED),
    )
