"""Reads. Each selector makes a constant number of queries whatever the project's size."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, QuerySet

from ..models import Annotation, Image, Project
from .projects import count_of, project_counts


def image_status_counts(*, project: Project) -> dict[str, int]:
    """{status: n, ..., "all": n} from the project's counts row (one query, no COUNT)."""
    row = project_counts(project=project)
    counts = {status: getattr(row, f"images_{status}") for status in Image.Status.values}
    counts["all"] = sum(counts.values())
    return counts


GRID_FIELDS = ("id", "project_id", "thumbnail", "original_name", "width", "height", "status")


@dataclass(frozen=True)
class ImagePage:
    """One keyset page of a project's images, in id order, each with its `annotation_count` and
    `proposal_count`. `has_previous` / `has_next`: whether a link that way can lead to images."""

    images: list[Image]
    has_previous: bool
    has_next: bool

    @property
    def first_id(self) -> int | None:
        return self.images[0].pk if self.images else None

    @property
    def last_id(self) -> int | None:
        return self.images[-1].pk if self.images else None


def image_page(
    *,
    project: Project,
    size: int,
    status: str | None = None,
    after: int | None = None,
    before: int | None = None,
    last: bool = False,
) -> ImagePage:
    """A page of the project's images (those with the status if one is given) in id order, by
    keyset: the first `size` ones after the id `after`, the last `size` ones before the id
    `before`, the last page (`last`), or else the first page. Two queries whatever the project's
    size: the page's ids (`LIMIT size + 1` on the index (project, status, id) or (project, id),
    the extra row telling whether more follow), then those images alone with their counts. A
    cursor past the end (nothing after `after`, nothing before `before`: images deleted meanwhile,
    a hand-written URL) gives the last or the first page instead (one more query)."""
    rows = Image.objects.filter(project=project)
    if status:
        rows = rows.filter(status=status)
    if after is not None:
        ids, more = _page_ids(rows.filter(id__gt=after).order_by("id"), size)
        if ids:
            return _page(ids, has_previous=True, has_next=more)
        last = True
    elif before is not None:
        ids, more = _page_ids(rows.filter(id__lt=before).order_by("-id"), size)
        if ids:
            return _page(ids[::-1], has_previous=more, has_next=True)
    if last:
        ids, more = _page_ids(rows.order_by("-id"), size)
        return _page(ids[::-1], has_previous=more, has_next=False)
    ids, more = _page_ids(rows.order_by("id"), size)
    return _page(ids, has_previous=False, has_next=more)


def _page_ids(rows: QuerySet[Image], size: int) -> tuple[list[int], bool]:
    """The first `size` ids of the ordered rows, and whether more follow (one query)."""
    ids = list(rows.values_list("id", flat=True)[: size + 1])
    return ids[:size], len(ids) > size


def _page(ids: list[int], *, has_previous: bool, has_next: bool) -> ImagePage:
    if not ids:
        return ImagePage(images=[], has_previous=False, has_next=False)
    images = list(_with_counts(Image.objects.filter(pk__in=ids)).only(*GRID_FIELDS).order_by("id"))
    return ImagePage(images=images, has_previous=has_previous, has_next=has_next)


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
