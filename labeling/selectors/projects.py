"""Reads. Each selector makes a constant number of queries whatever the project's size."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from ..access import projects_for_user
from ..models import Image, Project


def projects_of_user(*, user) -> QuerySet[Project]:
    """The user's projects with their image counts by status (one query)."""
    status_counts = {
        f"images_{status}": Count("images", filter=Q(images__status=status)) for status in Image.Status.values
    }
    return (
        projects_for_user(user)
        .annotate(image_count=Count("images"), **status_counts)
        .order_by("-created_at", "-id")
    )
