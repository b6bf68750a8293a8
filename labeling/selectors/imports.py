"""Import reads: the imports of a project (one query)."""

from __future__ import annotations

from django.db.models import QuerySet

from ..models import ImportJob, Project


def import_list(*, project: Project) -> QuerySet[ImportJob]:
    """The project's imports, newest first."""
    return ImportJob.objects.filter(project=project).order_by("-created_at", "-id")
