"""Reads. Each selector makes a constant number of queries whatever the project's size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from .access import projects_for_user
from .models import Image, PrelabelJob, Project


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


@dataclass(frozen=True)
class JobProgress:
    job: PrelabelJob
    rate: float | None  # images per second since the job started
    eta_seconds: float | None

    @property
    def failures_shown(self) -> bool:
        return self.job.failed > 0


def job_progress(job: PrelabelJob, *, now: datetime | None = None) -> JobProgress:
    now = now or timezone.now()
    rate = eta = None
    if job.started_at and job.finished_count:
        elapsed = ((job.finished_at or now) - job.started_at).total_seconds()
        if elapsed > 0:
            rate = job.finished_count / elapsed
            if job.is_active:
                eta = (job.total - job.finished_count) / rate
    return JobProgress(job=job, rate=rate, eta_seconds=eta)


def project_jobs(*, project: Project, limit: int = 10) -> tuple[JobProgress | None, list[JobProgress]]:
    """The active job (if any) and the recent ones, newest first (one query)."""
    jobs = [
        job_progress(job)
        for job in project.jobs.select_related("created_by").order_by("-created_at", "-id")[:limit]
    ]
    active = next((p for p in jobs if p.job.is_active), None)
    return active, jobs
