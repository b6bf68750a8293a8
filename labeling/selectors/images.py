"""Reads. Each selector makes a constant number of queries whatever the project's size."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.db.models.functions import Collate

from ..models import Annotation, Image, Project
from .projects import project_counts


def image_status_counts(*, project: Project) -> dict[str, int]:
    """{status: n, ..., "all": n} from the project's counts row (one query, no COUNT)."""
    row = project_counts(project=project)
    counts = {status: getattr(row, f"images_{status}") for status in Image.Status.values}
    counts["all"] = sum(counts.values())
    return counts


GRID_FIELDS = (
    "id", "project_id", "thumbnail", "original_name", "width", "height", "status",
    "annotation_count", "proposal_count",
)  # fmt: skip

# The grid's sorts: name → what the keyset orders by after the project (then the id). "added":
# upload order (the id); "name": the original name in code point order; "status": the stored
# value's order (done, new, prelabeled, skipped); "annotations": Image.annotation_count. Each is
# one index range read: (project[, status], id), image_name_prefix_idx / image_status_name_idx
# (project[, status], name "C", id), image_queue_idx (project, status, id), image_project_count_idx
# / image_status_count_idx (project[, status], annotation_count, id). A "-" before it: descending.
SORT_KEYS = ("added", "name", "status", "annotations")
SORTS = tuple(f"{sign}{key}" for key in SORT_KEYS for sign in ("", "-"))
DEFAULT_SORT = "added"
NAME_SORTS = ("name", "-name")
SEARCH_MAX = 255


def byte_order() -> str:
    """The collation that sorts by code point: what a prefix range and the name indexes need."""
    return "C" if connection.vendor == "postgresql" else "BINARY"


def prefix_end(prefix: str) -> str | None:
    """The first string after every string starting with `prefix`, in code point order (None: no
    upper bound)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < sys.maxunicode:
            following = last + 1
            if 0xD800 <= following <= 0xDFFF:  # no surrogates in text: go past them
                following = 0xE000
            return "".join(chars) + chr(following)
    return None


def name_in_byte_order():
    return Collate(F("original_name"), byte_order())


def name_prefix_match(prefix: str, field: str = "name_bytes") -> Q:
    """Names starting with `prefix` as typed (`%` and `_` are letters): one range of the name
    annotated as `field` (name_in_byte_order)."""
    match = Q(**{f"{field}__gte": prefix})
    end = prefix_end(prefix)
    if end is not None:
        match &= Q(**{f"{field}__lt": end})
    return match


def grid_sort(sort: str | None, search: str = "") -> str:
    """The sort a grid page uses: a known one (else the default); with a search, by name (the
    search is a range of the name index, so the page stays one bounded range read: the direction
    of a name sort is kept, any other sort gives way to the name ascending)."""
    sort = sort if sort in SORTS else DEFAULT_SORT
    if search and sort not in NAME_SORTS:
        return "name"
    return sort


def _sort_key(key: str):
    """The expression the keyset orders by before the id (None: the id alone)."""
    return {
        "added": None,
        "name": F("sort_key"),
        "status": F("status"),
        "annotations": F("annotation_count"),
    }[key]


def sort_value(image: Image, sort: str):
    """The boundary image's value of the sort (a cursor holds it with the id); None for "added"."""
    key = sort.lstrip("-")
    return {
        "added": None,
        "name": image.original_name,
        "status": image.status,
        "annotations": image.annotation_count,
    }[key]


@dataclass(frozen=True)
class Cursor:
    """A keyset position: the boundary image's id and its value of the sort (None when sorted by
    id alone)."""

    id: int
    value: str | int | None = None

    def encode(self) -> str:
        """`<id>` (sorted by id) or `<id>:<value>`: what `?after=` / `?before=` carry."""
        return str(self.id) if self.value is None else f"{self.id}:{self.value}"


@dataclass(frozen=True)
class ImagePage:
    """One keyset page of a project's images in the sort's order, each with its `annotation_count`
    and `proposal_count` (kept by the triggers). `has_previous` / `has_next`: whether a link that
    way can lead to images; `first` / `last`: the cursors of its boundary images."""

    images: list[Image]
    has_previous: bool
    has_next: bool
    sort: str = DEFAULT_SORT

    @property
    def first_id(self) -> int | None:
        return self.images[0].pk if self.images else None

    @property
    def last_id(self) -> int | None:
        return self.images[-1].pk if self.images else None

    def _cursor(self, image: Image) -> str:
        return Cursor(image.pk, sort_value(image, self.sort)).encode()

    @property
    def first(self) -> str | None:
        return self._cursor(self.images[0]) if self.images else None

    @property
    def last(self) -> str | None:
        return self._cursor(self.images[-1]) if self.images else None


def image_page(
    *,
    project: Project,
    size: int,
    status: str | None = None,
    sort: str = DEFAULT_SORT,
    search: str = "",
    after: Cursor | int | None = None,
    before: Cursor | int | None = None,
    last: bool = False,
) -> ImagePage:
    """A page of the project's images (those with the status if one is given, those whose original
    name starts with `search` if one is given) in the sort's order (grid_sort), by keyset: the
    first `size` ones after the cursor `after`, the last `size` ones before `before`, the last page
    (`last`), or else the first page. A cursor is (the sort's value, id): the row comparison
    `(value, id) > (v, i)` (`<` descending), so images sharing a value page like any others, ties
    broken by id. Two queries whatever the project's size: the page's ids (`LIMIT size + 1` on the
    sort's index, the extra row telling whether more follow), then those images alone with their
    counts (columns). A cursor past the end (images deleted meanwhile, a hand-written URL) gives
    the last or the first page instead (one more query); a cursor whose value is not of the sort's
    kind gives the first page."""
    after, before = (Cursor(c) if isinstance(c, int) else c for c in (after, before))
    sort = grid_sort(sort, search)
    key = sort.lstrip("-")
    descending = sort.startswith("-")
    rows = Image.objects.filter(project=project)
    if status:
        rows = rows.filter(status=status)
    if key == "name":
        rows = rows.annotate(sort_key=name_in_byte_order())
    if search:
        rows = rows.annotate(name_bytes=name_in_byte_order()).filter(name_prefix_match(search))
    expression = _sort_key(key)
    for cursor in (after, before):
        if cursor is not None and (cursor.value is None) != (expression is None):
            after = before = None  # a cursor of another sort: the first page
            last = False

    def ordered(forward: bool):
        ascending = forward != descending
        fields = ([expression] if expression is not None else []) + [F("id")]
        return rows.order_by(*(f.asc() if ascending else f.desc() for f in fields))

    def beyond(cursor: Cursor, forward: bool):
        greater = forward != descending
        if expression is None:
            return Q(id__gt=cursor.id) if greater else Q(id__lt=cursor.id)
        lookup = TupleGreaterThan if greater else TupleLessThan
        return lookup(Tuple(expression, F("id")), (cursor.value, cursor.id))

    if after is not None:
        ids, more = _page_ids(ordered(True).filter(beyond(after, True)), size)
        if ids:
            return _page(ids, sort=sort, has_previous=True, has_next=more)
        last = True
    elif before is not None:
        ids, more = _page_ids(ordered(False).filter(beyond(before, False)), size)
        if ids:
            return _page(ids[::-1], sort=sort, has_previous=more, has_next=True)
    if last:
        ids, more = _page_ids(ordered(False), size)
        return _page(ids[::-1], sort=sort, has_previous=more, has_next=False)
    ids, more = _page_ids(ordered(True), size)
    return _page(ids, sort=sort, has_previous=False, has_next=more)


def _page_ids(rows: QuerySet[Image], size: int) -> tuple[list[int], bool]:
    """The first `size` ids of the ordered rows, and whether more follow (one query)."""
    ids = list(rows.values_list("id", flat=True)[: size + 1])
    return ids[:size], len(ids) > size


def _page(ids: list[int], *, sort: str, has_previous: bool, has_next: bool) -> ImagePage:
    if not ids:
        return ImagePage(images=[], has_previous=False, has_next=False, sort=sort)
    found = {image.pk: image for image in Image.objects.filter(pk__in=ids).only(*GRID_FIELDS)}
    images = [found[pk] for pk in ids if pk in found]
    return ImagePage(images=images, has_previous=has_previous, has_next=has_next, sort=sort)


@dataclass(frozen=True)
class DeleteSummary:
    """What deleting the chosen images would take: how many of them are in the project, and their
    annotations (from the images' own counts)."""

    image_ids: list[int]
    annotations: int


def images_delete_summary(*, project: Project, image_ids: list[int]) -> DeleteSummary:
    """The confirmation's figures for deleting these images of the project (one query)."""
    rows = list(
        Image.objects.filter(project=project, pk__in=image_ids)
        .order_by("id")
        .values_list("id", "annotation_count")
    )
    return DeleteSummary(image_ids=[pk for pk, _ in rows], annotations=sum(n for _, n in rows))


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
    """The images; their `annotation_count` and `proposal_count` are columns now (kept by the
    annotations' triggers, labeling/db_counters.py), read with the row."""
    return images
