"""Reads of the prompt lab (labeling.services.prompt_lab): a project's runs, newest first, each
with its candidates (two queries whatever the number of runs on a page)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from ..models import Project, PromptLabCandidate, PromptLabRun


def run_list(*, project: Project) -> QuerySet[PromptLabRun]:
    """The project's runs, newest first, with their class and candidates (prefetched)."""
    return (
        PromptLabRun.objects.filter(project=project)
        .select_related("label_class")
        .prefetch_related(Prefetch("candidates", queryset=PromptLabCandidate.objects.order_by("position")))
        .order_by("-created_at", "-id")
    )


def run_active(*, project: Project) -> bool:
    """Whether a run of the project is queued or running (the page polls while one is)."""
    return PromptLabRun.objects.filter(
        project=project, status__in=[PromptLabRun.Status.QUEUED, PromptLabRun.Status.RUNNING]
    ).exists()
