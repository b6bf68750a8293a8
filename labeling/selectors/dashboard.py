"""The dashboard's reads: progress, throughput, jobs, workers and model quality per project.

Every figure is aggregated in the database (Count with filters, TruncDate / TruncHour), so a page
makes the same number of queries whatever the project's size. The time windows (progress,
throughput) read a range of the Image (project, reviewed_at) index. The whole-project quality
figures (`model_quality`: every annotation grouped, the edited proposals' IoU, the F1 sweep) are
not computed per view: a Celery task computes them into a DashboardSnapshot
(labeling.services.dashboard) and the page shows that snapshot, "as of" its time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Greatest, TruncDate, TruncHour
from django.utils import timezone

from inference.boxes import box_iou
from labeling.selectors.images import image_status_counts
from labeling.selectors.prelabel import jobs_of_project, worker_silence_seconds, workers_by_queue
from labeling.selectors.projects import project_counts

from ..models import Annotation, DashboardSnapshot, Image, Membership, PrelabelJob, Project

MODEL = Annotation.Source.MODEL
HUMAN = Annotation.Source.HUMAN
ACCEPTED = Annotation.State.ACCEPTED
REJECTED = Annotation.State.REJECTED
PROPOSED = Annotation.State.PROPOSED
DONE = Image.Status.DONE

QUEUES = ("default", "gpu", "interactive")


def dashboard_projects(*, user) -> QuerySet[Project]:
    """Projects whose dashboard the user may see: all for staff, the managed ones otherwise."""
    if not user.is_authenticated:
        return Project.objects.none()
    projects = Project.objects.all()
    if not user.is_staff:
        projects = projects.filter(memberships__user=user, memberships__role=Membership.Role.MANAGER)
    return projects.order_by("name", "id")


# The projects overview (/dashboard/) ------------------------------------------------------------

OVERVIEW_SORTS = ("activity", "name")
_STATUS_ORDER = ("done", "skipped", "prelabeled", "new")  # the progress bar's segments, left to right


@dataclass(frozen=True)
class Segment:
    status: str
    label: str
    count: int
    x: float  # percent of the bar
    width: float


@dataclass(frozen=True)
class ProjectOverview:
    """One project's line of the overview: figures from its counts row, the time windows from the
    (project, reviewed_at) index, its last pre-label job."""

    project: Project
    images: dict[str, int]  # by status, and "all"
    segments: list[Segment]
    proposals_decided: int
    proposals_open: int
    reviewed_24h: int
    reviewed_7d: int
    last_activity: datetime
    last_job: PrelabelJob | None

    @property
    def running_job(self) -> PrelabelJob | None:
        return self.last_job if self.last_job is not None and self.last_job.is_active else None

    @property
    def failed_job(self) -> PrelabelJob | None:
        failed = self.last_job is not None and self.last_job.status == PrelabelJob.Status.FAILED
        return self.last_job if failed else None


def _count_of_row(field: str) -> Coalesce:
    return Coalesce(F(f"counts__{field}"), Value(0), output_field=IntegerField())


def projects_overview(*, user, sort: str = "activity", now: datetime | None = None) -> list[ProjectOverview]:
    """Every project of the user's dashboard side by side, in three queries whatever the number of
    projects and their sizes, and no COUNT over a project's images or annotations:

    1. the projects with their counts row (a join), their last review (the newest entry of the
       (project, reviewed_at) index) and their last job (the newest of (project, created_at, id));
    2. the images reviewed (submitted or skipped: Image.reviewed_at, which only a review sets) in
       the last 7 days and 24 hours per project: an index-only range of the (project,
       reviewed_at) index, as long as the window's reviews, not the project;
    3. those last jobs by primary key.

    sort: "activity" (the latest of the last review, the last job's start and the project's
    creation, newest first) or "name"."""
    now = now or timezone.now()
    day_ago, week_ago = now - timedelta(hours=24), now - timedelta(days=7)
    last_review = (
        Image.objects.filter(project=OuterRef("pk"), reviewed_at__isnull=False)
        .order_by("-reviewed_at")
        .values("reviewed_at")[:1]
    )
    last_jobs = PrelabelJob.objects.filter(project=OuterRef("pk")).order_by("-created_at", "-id")
    statuses = {f"images_{status}": _count_of_row(f"images_{status}") for status in Image.Status.values}
    projects = dashboard_projects(user=user).annotate(
        **statuses,
        model_decided=_count_of_row("model_accepted") + _count_of_row("model_rejected"),
        model_open=_count_of_row("model_proposed"),
        last_review_at=Subquery(last_review),
        last_job_id=Subquery(last_jobs.values("pk")[:1]),
        last_job_at=Subquery(last_jobs.values("created_at")[:1]),
    )
    projects = projects.annotate(
        activity=Greatest(
            Coalesce("last_review_at", "created_at"), Coalesce("last_job_at", "created_at"), "created_at"
        )
    )
    if sort == "name":
        projects = projects.order_by("name", "id")
    else:
        projects = projects.order_by("-activity", "name", "id")
    rows = list(projects)
    if not rows:
        return []
    windows = {
        row["project_id"]: row
        for row in Image.objects.filter(
            project_id__in=[p.pk for p in rows],
            reviewed_at__gte=week_ago,
            reviewed_at__lte=now,
        )
        .values("project_id")
        .annotate(last_7d=Count("id"), last_24h=Count("id", filter=Q(reviewed_at__gte=day_ago)))
        .order_by()
    }
    job_ids = [p.last_job_id for p in rows if p.last_job_id is not None]
    jobs = PrelabelJob.objects.in_bulk(job_ids) if job_ids else {}
    labels = dict(Image.Status.choices)
    overview = []
    for p in rows:
        images = {status: getattr(p, f"images_{status}") for status in Image.Status.values}
        images["all"] = sum(images[status] for status in Image.Status.values)
        segments, x = [], 0.0
        for status in _STATUS_ORDER:
            width = 100.0 * images[status] / images["all"] if images["all"] else 0.0
            segments.append(Segment(status, labels[status], images[status], round(x, 3), round(width, 3)))
            x += width
        window = windows.get(p.pk, {})
        overview.append(
            ProjectOverview(
                project=p,
                images=images,
                segments=segments,
                proposals_decided=p.model_decided,
                proposals_open=p.model_open,
                reviewed_24h=window.get("last_24h", 0),
                reviewed_7d=window.get("last_7d", 0),
                last_activity=p.activity,
                last_job=jobs.get(p.last_job_id),
            )
        )
    return overview


# Progress over time ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str
    show_label: bool


@dataclass(frozen=True)
class Chart:
    """A bar chart drawn as SVG by the template: coordinates already scaled to the viewBox."""

    bars: list[Bar]
    width: int
    height: int
    left: int
    bottom: int  # y of the x axis
    top: int
    max_value: int
    ticks: list[tuple[float, int]]  # (y, value) for the y axis's labels
    total: int
    unit: str


def _chart(points: list[tuple[str, int]], *, unit: str, width: int = 720, height: int = 220) -> Chart:
    left, right, top, bottom_pad = 44, 8, 12, 28
    bottom = height - bottom_pad
    plot_w, plot_h = width - left - right, bottom - top
    max_value = max([v for _, v in points] + [1])
    # A round-ish top for the axis, so its labels are whole numbers.
    step = max(1, -(-max_value // 4))
    axis_max = step * 4
    slot = plot_w / max(len(points), 1)
    every = max(1, len(points) // 8)  # at most ~8 labels on the x axis
    bars = []
    for i, (label, value) in enumerate(points):
        h = plot_h * value / axis_max
        bars.append(
            Bar(
                x=round(left + i * slot + slot * 0.1, 2),
                y=round(bottom - h, 2),
                width=round(slot * 0.8, 2),
                height=round(h, 2),
                value=value,
                label=label,
                show_label=(len(points) - 1 - i) % every == 0,
            )
        )
    ticks = [(round(bottom - plot_h * k / 4, 2), step * k) for k in range(5)]
    return Chart(
        bars=bars,
        width=width,
        height=height,
        left=left,
        bottom=bottom,
        top=top,
        max_value=max_value,
        ticks=ticks,
        total=sum(v for _, v in points),
        unit=unit,
    )


def review_progress(*, project: Project, by: str = "day", now: datetime | None = None) -> Chart:
    """Images reviewed (submitted as done) per day over the last 14 days, or per hour over the
    last 24 hours, from Image.reviewed_at (one query)."""
    now = now or timezone.now()
    tz = timezone.get_current_timezone()
    local_now = timezone.localtime(now, tz)
    if by == "hour":
        start = local_now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
        slots = [start + timedelta(hours=i) for i in range(24)]
        trunc = TruncHour("reviewed_at", tzinfo=tz)
        keys = slots
        labels = [s.strftime("%H:00") for s in slots]
    else:
        start_day = local_now.date() - timedelta(days=13)
        start = datetime.combine(start_day, datetime.min.time(), tzinfo=tz)
        keys = [start_day + timedelta(days=i) for i in range(14)]
        trunc = TruncDate("reviewed_at", tzinfo=tz)
        labels = [d.strftime("%b %d") for d in keys]
    rows = (
        Image.objects.filter(project=project, status=DONE, reviewed_at__gte=start, reviewed_at__lte=now)
        .annotate(slot=trunc)
        .values("slot")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {row["slot"]: row["n"] for row in rows}
    points = [(label, counts.get(key, 0)) for key, label in zip(keys, labels, strict=True)]
    return _chart(points, unit="hour" if by == "hour" else "day")


# Throughput, jobs, counts ----------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    username: str
    last_24h: int
    last_7d: int

    @property
    def per_hour_24h(self) -> float:
        return self.last_24h / 24

    @property
    def per_hour_7d(self) -> float:
        return self.last_7d / (24 * 7)


def annotator_throughput(*, project: Project, now: datetime | None = None) -> list[Throughput]:
    """Images each person reviewed (done or skipped) in the last 24 hours and 7 days (one query)."""
    now = now or timezone.now()
    day_ago, week_ago = now - timedelta(hours=24), now - timedelta(days=7)
    rows = (
        Image.objects.filter(
            project=project, reviewed_by__isnull=False, reviewed_at__gte=week_ago, reviewed_at__lte=now
        )
        .values("reviewed_by", "reviewed_by__username")
        .annotate(last_7d=Count("id"), last_24h=Count("id", filter=Q(reviewed_at__gte=day_ago)))
        .order_by("-last_24h", "-last_7d", "reviewed_by__username")
    )
    return [Throughput(r["reviewed_by__username"], r["last_24h"], r["last_7d"]) for r in rows]


def proposal_counts(*, project: Project) -> dict[str, int]:
    """The model's proposals by state, and how many were edited, from the project's counts row
    (one query, no COUNT)."""
    row = project_counts(project=project)
    return {
        "total": row.model_total,
        "accepted": row.model_accepted,
        "rejected": row.model_rejected,
        "proposed": row.model_proposed,
        "edited": row.model_edited,
    }


# Workers ---------------------------------------------------------------------------------------


def workers_status(*, now: datetime | None = None) -> dict:
    """Which workers consume each of QUEUES: {"queues": {name: {"state", "workers"}}, "note"}.

    Read from the heartbeats every worker writes to the database (labeling.worker_beat), so it
    answers on every broker, the embedded filesystem one included, in one query and without
    waiting on the broker."""
    alive = workers_by_queue(now=now)
    return {
        "queues": {
            q: {"state": "online" if alive.get(q) else "offline", "workers": sorted(alive.get(q, ()))}
            for q in QUEUES
        },
        "note": f"Workers that reported in the last {worker_silence_seconds()} s.",
    }


# Model quality ---------------------------------------------------------------------------------


def mask_iou(a: dict, b: dict) -> float | None:
    """IoU of two COCO RLE masks (None when they cannot be compared)."""
    try:
        from pycocotools import mask as coco_mask

        def rle(m: dict) -> dict:
            counts = m["counts"]
            return {"size": list(m["size"]), "counts": counts.encode() if isinstance(counts, str) else counts}

        ra, rb = rle(a), rle(b)
        if ra["size"] != rb["size"]:
            return None
        if isinstance(ra["counts"], list):
            ra = coco_mask.frPyObjects(ra, *ra["size"])
        if isinstance(rb["counts"], list):
            rb = coco_mask.frPyObjects(rb, *rb["size"])
        return float(coco_mask.iou([ra], [rb], [0])[0][0])
    except Exception:  # a malformed mask is left out of the mean, not a 500
        return None


@dataclass(frozen=True)
class Suggestion:
    threshold: float
    f1: float
    tp: int
    fp: int
    fn: int


def suggest_threshold(pairs: list[tuple[float, str]], *, missed: int) -> Suggestion | None:
    """The box threshold that maximises F1 over decided proposals (score, state) of reviewed
    images, plus `missed` hand-drawn objects. Candidates are the distinct scores; TP(t) = accepted
    with score ≥ t, FP(t) = rejected with score ≥ t, FN(t) = accepted below t + missed.
    Ties go to the higher threshold. None when there is nothing decided."""
    if not pairs:
        return None
    by_score: dict[float, list[int]] = defaultdict(lambda: [0, 0])
    for score, state in pairs:
        by_score[score][0 if state == ACCEPTED else 1] += 1
    total_accepted = sum(a for a, _ in by_score.values())
    best: Suggestion | None = None
    tp = fp = 0
    for score in sorted(by_score, reverse=True):  # from the highest t down: ties keep the higher
        tp += by_score[score][0]
        fp += by_score[score][1]
        fn = total_accepted - tp + missed
        denominator = 2 * tp + fp + fn
        f1 = 2 * tp / denominator if denominator else 0.0
        if best is None or f1 > best.f1 + 1e-12:
            best = Suggestion(threshold=score, f1=f1, tp=tp, fp=fp, fn=fn)
    return best


@dataclass
class Quality:
    """One row of the quality table: a class, or one prompt of a class."""

    class_id: int
    name: str
    prompt: str
    color: str = "#7f7f7f"
    threshold: float | None = None
    own_threshold: float | None = None
    shown_accepted: int = 0
    shown_rejected: int = 0
    missed: int = 0
    edited: int = 0
    box_ious: list[float] = field(default_factory=list)
    mask_ious: list[float] = field(default_factory=list)
    suggestion: Suggestion | None = None
    prompts: list[Quality] = field(default_factory=list)

    @property
    def shown_decided(self) -> int:
        return self.shown_accepted + self.shown_rejected

    @property
    def acceptance_rate(self) -> float | None:
        return self.shown_accepted / self.shown_decided if self.shown_decided else None

    @property
    def mean_box_iou(self) -> float | None:
        return sum(self.box_ious) / len(self.box_ious) if self.box_ious else None

    @property
    def mean_mask_iou(self) -> float | None:
        return sum(self.mask_ious) / len(self.mask_ious) if self.mask_ious else None


def _job_prompts(project: Project) -> dict[tuple[int, int], str]:
    """(job id, class id) → the prompt the job used for that class, from the params snapshots."""
    prompts = {}
    for job_id, params in PrelabelJob.objects.filter(project=project).values_list("id", "params"):
        for c in (params or {}).get("classes") or ():
            if isinstance(c, dict) and "id" in c:
                prompts[(job_id, c["id"])] = str(c.get("prompt") or c.get("name") or "")
    return prompts


def model_quality(*, project: Project) -> list[Quality]:
    """Quality per class, each with its rows per prompt (five queries whatever the size)."""
    classes = list(project.classes.all())  # 1
    by_class = {
        c.pk: Quality(
            class_id=c.pk,
            name=c.name,
            prompt=c.prompt,
            color=c.color,
            threshold=c.box_threshold if c.box_threshold is not None else project.box_threshold,
            own_threshold=c.box_threshold,
        )
        for c in classes
    }
    job_prompts = _job_prompts(project)  # 2
    per_prompt: dict[tuple[int, str], Quality] = {}

    def prompt_row(class_id: int, job_id: int | None) -> Quality | None:
        parent = by_class.get(class_id)
        if parent is None or job_id is None:
            return None
        prompt = job_prompts.get((job_id, class_id), "(job's snapshot not found)")
        key = (class_id, prompt)
        if key not in per_prompt:
            per_prompt[key] = Quality(class_id=class_id, name=parent.name, prompt=prompt, color=parent.color)
        return per_prompt[key]

    # 3: shown-and-decided proposals and misses, per class and job.
    effective = Coalesce(F("label_class__box_threshold"), Value(project.box_threshold))
    shown = Q(source=MODEL, score__gte=effective)
    rows = (
        Annotation.objects.filter(image__project=project)
        .values("label_class_id", "job_id")
        .annotate(
            shown_accepted=Count("id", filter=shown & Q(state=ACCEPTED)),
            shown_rejected=Count("id", filter=shown & Q(state=REJECTED)),
            missed=Count("id", filter=Q(source=HUMAN, image__status=DONE)),
        )
        .order_by()
    )
    for row in rows:
        targets = [by_class.get(row["label_class_id"]), prompt_row(row["label_class_id"], row["job_id"])]
        for target in filter(None, targets):
            target.shown_accepted += row["shown_accepted"]
            target.shown_rejected += row["shown_rejected"]
            target.missed += row["missed"]

    # 4: edited proposals: the model's box / mask against the final ones.
    edited = Annotation.objects.filter(
        image__project=project, source=MODEL, original_box__isnull=False
    ).values_list("label_class_id", "job_id", "x", "y", "w", "h", "original_box", "mask", "original_mask")
    for class_id, job_id, x, y, w, h, original_box, mask, original_mask in edited:
        targets = [t for t in (by_class.get(class_id), prompt_row(class_id, job_id)) if t]
        try:
            iou = float(box_iou(original_box, [(x, y, w, h)])[0])
        except (TypeError, ValueError):
            iou = None
        m_iou = mask_iou(original_mask, mask) if mask and original_mask else None
        for target in targets:
            target.edited += 1
            if iou is not None:
                target.box_ious.append(iou)
            if m_iou is not None:
                target.mask_ious.append(m_iou)

    # 5: the F1 sweep's input: decided proposals on reviewed images (misses come from query 3,
    # which counts the same thing: human annotations on done images).
    pairs: dict[int, list[tuple[float, str]]] = defaultdict(list)
    decided = Annotation.objects.filter(
        image__project=project,
        image__status=DONE,
        source=MODEL,
        state__in=[ACCEPTED, REJECTED],
        score__isnull=False,
    ).values_list("label_class_id", "score", "state")
    for class_id, score, state in decided:
        pairs[class_id].append((score, state))
    for class_id, quality in by_class.items():
        quality.suggestion = suggest_threshold(pairs.get(class_id, []), missed=quality.missed)

    for (class_id, _), row in sorted(per_prompt.items(), key=lambda kv: kv[0][1]):
        by_class[class_id].prompts.append(row)
    return list(by_class.values())


# The snapshot of the quality figures -----------------------------------------------------------


def _percent(part: int, whole: int) -> int | None:
    return round(100 * part / whole) if whole else None


def _quality_row(q: Quality) -> dict:
    """One row of the quality table as JSON (what the snapshot stores and the page shows)."""
    s = q.suggestion
    return {
        "class_id": q.class_id,
        "name": q.name,
        "prompt": q.prompt,
        "color": q.color,
        "threshold": q.threshold,
        "own_threshold": q.own_threshold,
        "shown_accepted": q.shown_accepted,
        "shown_rejected": q.shown_rejected,
        "shown_decided": q.shown_decided,
        "acceptance_rate": q.acceptance_rate,
        "acceptance_percent": _percent(q.shown_accepted, q.shown_decided),
        "missed": q.missed,
        "edited": q.edited,
        "mean_box_iou": q.mean_box_iou,
        "box_iou_count": len(q.box_ious),
        "mean_mask_iou": q.mean_mask_iou,
        "mask_iou_count": len(q.mask_ious),
        "suggestion": (
            {"threshold": s.threshold, "f1": s.f1, "tp": s.tp, "fp": s.fp, "fn": s.fn} if s else None
        ),
        "prompts": [_quality_row(p) for p in q.prompts],
    }


def quality_figures(quality: list[Quality]) -> list[dict]:
    """model_quality's rows as the JSON the snapshot stores (means and counts, not the IoU lists)."""
    return [_quality_row(q) for q in quality]


def project_fingerprint(*, project: Project, counts: dict, proposals: dict, thresholds: list) -> dict:
    """What the quality figures depend on, cheaply: the image counts by status, the proposals by
    state (both kept by counters) and the thresholds in force. When it differs from the
    snapshot's, the project changed since the figures were computed."""
    return {
        "counts": {str(k): int(v or 0) for k, v in counts.items()},
        "proposals": {str(k): int(v or 0) for k, v in proposals.items()},
        "box_threshold": project.box_threshold,
        "thresholds": [[int(pk), value] for pk, value in sorted(thresholds)],
    }


def class_thresholds(*, project: Project) -> list[tuple[int, float | None]]:
    """(class id, own box threshold) of the project's classes (one query)."""
    return list(project.classes.order_by("id").values_list("id", "box_threshold"))


def dashboard_snapshot(*, project: Project) -> DashboardSnapshot | None:
    """The project's snapshot row, or None when none was ever asked for (one query)."""
    return DashboardSnapshot.objects.filter(project=project).first()


def snapshot_seconds() -> int:
    """How old the figures may get before a view of a changed project queues a recompute."""
    return int(settings.LABELGPT_DASHBOARD_SNAPSHOT_SECONDS)


def snapshot_is_stale(*, snapshot: DashboardSnapshot | None, fingerprint: dict, now: datetime) -> bool:
    """Never computed, or older than LABELGPT_DASHBOARD_SNAPSHOT_SECONDS and the project changed."""
    if snapshot is None or snapshot.computed_at is None:
        return True
    old = now - snapshot.computed_at > timedelta(seconds=snapshot_seconds())
    return old and snapshot.fingerprint != fingerprint


def snapshot_is_pending(snapshot: DashboardSnapshot | None) -> bool:
    """A recompute was queued and has not landed yet."""
    if snapshot is None or snapshot.requested_at is None:
        return False
    return snapshot.computed_at is None or snapshot.requested_at > snapshot.computed_at


# The page ---------------------------------------------------------------------------------------


def project_dashboard(*, project: Project, by: str = "day", now: datetime | None = None) -> dict:
    """Everything the project's dashboard shows (a constant number of queries, none of which reads
    all of the project's annotations: the quality table is the snapshot's).

    `quality` is the snapshot's rows (None when never computed), `quality_as_of` their time,
    `quality_pending` whether a recompute is queued, and `quality_stale` whether the view should
    queue one (labeling.services.dashboard.dashboard_snapshot_request)."""
    now = now or timezone.now()
    active, jobs = jobs_of_project(project=project)
    counts = image_status_counts(project=project)
    proposals = proposal_counts(project=project)
    fingerprint = project_fingerprint(
        project=project, counts=counts, proposals=proposals, thresholds=class_thresholds(project=project)
    )
    snapshot = dashboard_snapshot(project=project)
    return {
        "counts": counts,
        "proposals": proposals,
        "progress": review_progress(project=project, by=by, now=now),
        "throughput": annotator_throughput(project=project, now=now),
        "active_job": active,
        "jobs": jobs,
        "workers": workers_status(),
        "quality": snapshot.figures if snapshot is not None else None,
        "quality_as_of": snapshot.computed_at if snapshot is not None else None,
        "quality_pending": snapshot_is_pending(snapshot),
        "quality_stale": snapshot_is_stale(snapshot=snapshot, fingerprint=fingerprint, now=now),
        "snapshot_seconds": snapshot_seconds(),
    }
