"""Reads. Each selector makes a constant number of queries whatever the project's size."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.utils import timezone

from .. import queues
from ..models import JobStatus, PrelabelJob, PrelabelJobItem, Project, WorkerBeat


@dataclass(frozen=True)
class JobProgress:
    job: PrelabelJob
    rate: float | None  # images per second over the running time (start → stop, or now)
    eta_seconds: float | None  # once the first image is finished, while the job is active
    no_worker: bool = False  # queued, and no worker consumes the gpu queue

    @property
    def failures_shown(self) -> bool:
        return self.job.failed > 0

    @property
    def rate_per_minute(self) -> float | None:
        return None if self.rate is None else self.rate * 60

    @property
    def eta_text(self) -> str:
        if self.eta_seconds is None:
            return ""
        seconds = round(self.eta_seconds)
        if seconds < 90:
            return f"about {seconds} s left"
        minutes = round(seconds / 60)
        return f"about {minutes} min left" if minutes < 90 else f"about {minutes / 60:.1f} h left"


def job_progress(job: PrelabelJob, *, now: datetime | None = None, no_worker: bool = False) -> JobProgress:
    """Rate over the time the job really ran: from its start to when its last batch stopped (not
    to a cancel that batches took a while to see), or to now while it runs."""
    now = now or timezone.now()
    rate = eta = None
    if job.started_at and job.finished_count:
        end = job.stopped_at or (now if job.is_active else job.finished_at or now)
        elapsed = (end - job.started_at).total_seconds()
        if elapsed > 0:
            rate = job.finished_count / elapsed
            if job.is_active:
                eta = (job.total - job.finished_count) / rate
    return JobProgress(job=job, rate=rate, eta_seconds=eta, no_worker=no_worker)


def jobs_of_project(*, project: Project, limit: int = 10) -> tuple[JobProgress | None, list[JobProgress]]:
    """The active job (if any) and the recent ones, newest first (one query; one more while the
    active job waits for a worker, to say whether any consumes the gpu queue)."""
    jobs = [
        job_progress(job)
        for job in project.jobs.select_related("created_by").order_by("-created_at", "-id")[:limit]
    ]
    active = next((p for p in jobs if p.job.is_active), None)
    if (
        active is not None
        and active.job.stage == PrelabelJob.Stage.QUEUED
        and not workers_alive(queue=queues.GPU)
    ):
        active = replace(active, no_worker=True)
        jobs = [active if p.job.pk == active.job.pk else p for p in jobs]
    return active, jobs


# Workers -----------------------------------------------------------------------------------------


def worker_silence_seconds() -> int:
    """A worker silent for longer than this (three missed beats) is taken for dead."""
    return 3 * settings.LABELGPT_WORKER_BEAT_SECONDS


def _live_beats(now: datetime | None) -> QuerySet[WorkerBeat]:
    """The WorkerBeat rows of workers that reported in the last few beats (any broker)."""
    since = (now or timezone.now()) - timedelta(seconds=worker_silence_seconds())
    return WorkerBeat.objects.filter(seen_at__gte=since)


def workers_alive(*, queue: str, now: datetime | None = None) -> list[WorkerBeat]:
    """The live workers consuming `queue`."""
    return [w for w in _live_beats(now) if queue in w.queues.split(",")]


def workers_by_queue(*, now: datetime | None = None) -> dict[str, list[str]]:
    """Queue name → host names of the live workers consuming it (one query)."""
    by_queue: dict[str, list[str]] = {}
    for hostname, names in _live_beats(now).values_list("hostname", "queues"):
        for queue in names.split(","):
            by_queue.setdefault(queue, []).append(hostname)
    return by_queue


def job_list(*, project: Project) -> QuerySet[PrelabelJob]:
    """The project's jobs, newest first."""
    return PrelabelJob.objects.filter(project=project).order_by("-created_at", "-id")


@dataclass(frozen=True)
class JobPage:
    """One keyset page of a project's job history, newest first ((created_at, id) descending),
    each job with its progress. `has_newer` / `has_older`: whether a link that way leads to jobs."""

    jobs: list[JobProgress]
    has_newer: bool
    has_older: bool

    @property
    def first_id(self) -> int | None:
        return self.jobs[0].job.pk if self.jobs else None

    @property
    def last_id(self) -> int | None:
        return self.jobs[-1].job.pk if self.jobs else None


def job_page(*, project: Project, size: int, after: int | None = None, before: int | None = None) -> JobPage:
    """A page of the project's jobs, newest first, by keyset on (created_at, id) like the API's
    (labeling.api.pagination.NewestFirstCursorPagination), with a job's id as the cursor: the
    `size` jobs older than the job `after`, the `size` newer than the job `before`, or the newest.
    One range read with `LIMIT size + 1` on the index (project, created_at, id), plus one query
    for the cursor's row; a cursor that names no job of the project gives the first page."""
    jobs = PrelabelJob.objects.filter(project=project).select_related("created_by")
    cursor = after if after is not None else before
    boundary = None
    if cursor is not None:
        boundary = jobs.filter(pk=cursor).values_list("created_at", "id").first()
    if boundary is None:
        rows = list(jobs.order_by("-created_at", "-id")[: size + 1])
        return JobPage([job_progress(j) for j in rows[:size]], has_newer=False, has_older=len(rows) > size)
    position = Tuple(F("created_at"), F("id"))
    if after is not None:
        rows = list(jobs.filter(TupleLessThan(position, boundary)).order_by("-created_at", "-id")[: size + 1])
        return JobPage([job_progress(j) for j in rows[:size]], has_newer=True, has_older=len(rows) > size)
    rows = list(jobs.filter(TupleGreaterThan(position, boundary)).order_by("created_at", "id")[: size + 1])
    page = rows[:size][::-1]
    if not page:
        return job_page(project=project, size=size)
    return JobPage([job_progress(j) for j in page], has_newer=len(rows) > size, has_older=True)


def job_active(*, project: Project) -> JobProgress | None:
    """The project's active job (queued or running: at most one), with `no_worker` set while it is
    queued and no worker consumes the gpu queue (one query; one more in that case)."""
    job = (
        PrelabelJob.objects.filter(project=project, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        .order_by("-created_at", "-id")
        .first()
    )
    if job is None:
        return None
    waiting = job.stage == PrelabelJob.Stage.QUEUED and not workers_alive(queue=queues.GPU)
    return job_progress(job, no_worker=waiting)


def job_failures(*, job: PrelabelJob, limit: int = 500) -> QuerySet[PrelabelJobItem]:
    """The job's failed images with their reasons, in order."""
    return job.items.filter(status="failed").select_related("image").order_by("id")[:limit]
