"""The project counters' check: recompute a project's counts with real COUNTs, report what drifted
and, asked to, fix it (the triggers of labeling/db_counters.py keep them; this is the audit)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, F, Q

from ..db_counters import COUNTERS
from ..models import Annotation, Image, LabelClass, Project, ProjectCounts
from ..selectors.projects import count_of

MODEL = Annotation.Source.MODEL
State = Annotation.State

# What each counter counts, as the triggers do (tests/labeling/test_project_counts.py holds the two
# to the same list of counters).
ANNOTATION_FILTERS = {
    "annotations_proposed": Q(state=State.PROPOSED),
    "annotations_accepted": Q(state=State.ACCEPTED),
    "annotations_rejected": Q(state=State.REJECTED),
    "model_proposed": Q(source=MODEL, state=State.PROPOSED),
    "model_accepted": Q(source=MODEL, state=State.ACCEPTED),
    "model_rejected": Q(source=MODEL, state=State.REJECTED),
    "model_edited": Q(source=MODEL, original_box__isnull=False),
}


@dataclass(frozen=True)
class Drift:
    """A counter whose stored value is not the real count (stored None: the row was missing)."""

    project_id: int
    field: str
    stored: int | None
    actual: int


def project_counts_actual(*, project_id: int) -> dict[str, int]:
    """Every counter of the project counted from its rows (three queries, each a full count)."""
    actual = dict.fromkeys(COUNTERS, 0)
    statuses = Image.objects.filter(project_id=project_id).values("status").annotate(n=Count("id")).order_by()
    for row in statuses:
        field = f"images_{row['status']}"
        if field in actual:
            actual[field] = row["n"]
    actual.update(
        Annotation.objects.filter(image__project_id=project_id).aggregate(
            **{field: Count("id", filter=condition) for field, condition in ANNOTATION_FILTERS.items()}
        )
    )
    actual["classes"] = LabelClass.objects.filter(project_id=project_id).count()
    return actual


def _with_real_counts(images):
    return images.annotate(
        real_annotations=count_of(Annotation.objects, "image"),
        real_proposals=count_of(Annotation.objects, "image", state=State.PROPOSED),
    )


def image_counts_recompute(*, project_id: int, fix: bool = False) -> list[Drift]:
    """The project's images whose own counts (annotation_count, proposal_count) are not their real
    counts, as drifts named "image <id> <column>"; with `fix`, the real counts written. The
    candidates are found without locks (one pass over the project's images), then locked (an
    image's row before anything else: the writers' lock order), counted again and fixed in one
    short transaction, so an annotation written meanwhile is either waited for or seen."""
    drifted = ~Q(annotation_count=F("real_annotations"), proposal_count=F("real_proposals"))
    candidates = list(
        _with_real_counts(Image.objects.filter(project_id=project_id))
        .filter(drifted)
        .order_by("id")
        .values_list("id", flat=True)
    )
    if not candidates:
        return []
    found: list[Drift] = []
    with transaction.atomic():
        list(Image.objects.select_for_update().filter(pk__in=candidates).order_by("id").values_list("id"))
        rows = (
            _with_real_counts(Image.objects.filter(pk__in=candidates, project_id=project_id))
            .filter(drifted)
            .order_by("id")
            .values("id", "annotation_count", "proposal_count", "real_annotations", "real_proposals")
        )
        for row in rows:
            for column, real in (
                ("annotation_count", "real_annotations"),
                ("proposal_count", "real_proposals"),
            ):
                if row[column] != row[real]:
                    found.append(Drift(project_id, f"image {row['id']} {column}", row[column], row[real]))
            if fix:
                Image.objects.filter(pk=row["id"]).update(
                    annotation_count=row["real_annotations"], proposal_count=row["real_proposals"]
                )
    return found


class UnknownProjects(ValueError):
    def __init__(self, ids: list[int]):
        super().__init__(f"No project with id {', '.join(map(str, ids))}.")
        self.ids = ids


def project_counts_recompute(*, project_ids: Iterable[int] | None = None, fix: bool = False) -> list[Drift]:
    """Compare the counts rows of the given projects (None: all) with real counts; with `fix`,
    write the real counts (creating a missing row). Each project in its own short transaction with
    its counts row locked, so no write of that project runs between the read and the count (the
    writers wait for the lock) and the figures compared are of one moment. Each image's own counts
    are checked (and fixed) too, before its project's row (image_counts_recompute)."""
    existing = Project.objects.order_by("id")
    if project_ids is not None:
        wanted = sorted(set(project_ids))
        existing = existing.filter(pk__in=wanted)
    ids = list(existing.values_list("pk", flat=True))
    if project_ids is not None and (unknown := sorted(set(wanted) - set(ids))):
        raise UnknownProjects(unknown)
    drifts: list[Drift] = []
    for project_id in ids:
        drifts += image_counts_recompute(project_id=project_id, fix=fix)
        if fix:
            # From here on the triggers count this project's writes into the row.
            ProjectCounts.objects.get_or_create(project_id=project_id)
        with transaction.atomic():
            row = ProjectCounts.objects.select_for_update().filter(project_id=project_id).first()
            actual = project_counts_actual(project_id=project_id)
            found = [
                Drift(project_id, field, getattr(row, field) if row else None, value)
                for field, value in actual.items()
                if row is None or getattr(row, field) != value
            ]
            if fix and found:
                ProjectCounts.objects.filter(project_id=project_id).update(**actual)
        drifts += found
    return drifts
