"""Reads. Each selector makes a constant number of queries whatever the project's size."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from .access import projects_for_user
from .models import Image, Project


def project_list(*, user) -> QuerySet[Project]:
    """The user's projects with their image counts by status (one query)."""
    status_counts = {
        f"images_{status}": Count("images", filter=Q(images__status=status)) for status in Image.Status.values
    }
    return (
        projects_for_user(user)
        .annotate(image_count=Count("images"), **status_counts)
        .order_by("-created_at", "-id")
    )


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
