"""Reads. Each selector makes a constant number of queries whatever the project's size."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from ..models import Image, Project


def image_status_counts(*, project: Project) -> dict[str, int]:
    counts = dict.fromkeys(Image.Status.values, 0)
    for row in project.images.values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    counts["all"] = sum(counts.values())
    return counts


def image_list(*, project: Project, status: str | None = None) -> QuerySet[Image]:
    images = project.images.only(
        "id", "project_id", "thumbnail", "original_name", "width", "height", "status", "created_at"
    ).order_by("id")
    if status:
        images = images.filter(status=status)
    return images
