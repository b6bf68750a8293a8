"""The dashboard's snapshot of the whole-project quality figures: computed by a Celery task
(labeling.tasks.dashboard_snapshot_compute, default queue) and stored in DashboardSnapshot, so that
the page does not group all of a project's annotations on every view.

A view queues a recompute when the figures are missing, or older than
LABELGPT_DASHBOARD_SNAPSHOT_SECONDS and the project changed (its fingerprint: counts and
thresholds); a manager's Refresh queues one whatever their age. At most one waits at a time: the
request is claimed with a conditional UPDATE of `requested_at`, and one that never landed (a lost
message) is claimed again after LABELGPT_DASHBOARD_REQUEUE_SECONDS. The figures on show stay until
the new ones land.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from .. import queues
from ..models import DashboardSnapshot, Project
from ..selectors.dashboard import (
    class_thresholds,
    model_quality,
    project_fingerprint,
    proposal_counts,
    quality_figures,
)
from ..selectors.images import image_status_counts


def dashboard_snapshot_request(*, project: Project) -> bool:
    """Queue a recompute of the project's quality figures unless one is already waiting (sent
    once the transaction commits), whatever the figures' age (the caller decides when: a stale
    page, a manager's Refresh). Returns whether this call queued it."""
    now = timezone.now()
    DashboardSnapshot.objects.bulk_create([DashboardSnapshot(project=project)], ignore_conflicts=True)
    requeue_before = now - timedelta(seconds=settings.LABELGPT_DASHBOARD_REQUEUE_SECONDS)
    nothing_waiting = (
        Q(requested_at__isnull=True)
        | Q(computed_at__isnull=False, requested_at__lte=F("computed_at"))
        | Q(requested_at__lt=requeue_before)
    )
    claimed = DashboardSnapshot.objects.filter(Q(project=project) & nothing_waiting).update(requested_at=now)
    if not claimed:
        return False

    def failed(reason: str) -> None:  # the broker is down: let the next view try again
        DashboardSnapshot.objects.filter(project=project, requested_at=now).update(requested_at=None)

    queues.task_send_on_commit(task=queues.DASHBOARD_SNAPSHOT_COMPUTE, args=[project.pk], failed=failed)
    return True


def dashboard_snapshot_compute(*, project_id: int) -> bool:
    """Compute the project's quality figures and store them with the time they were started and
    the project's fingerprint then. Idempotent; False when the project is gone."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return False
    started = timezone.now()
    fingerprint = project_fingerprint(
        project=project,
        counts=image_status_counts(project=project),
        proposals=proposal_counts(project=project),
        thresholds=class_thresholds(project=project),
    )
    figures = quality_figures(model_quality(project=project))
    DashboardSnapshot.objects.update_or_create(
        project=project,
        defaults={"figures": figures, "fingerprint": fingerprint, "computed_at": started},
    )
    return True
