"""The domain model (see docs/architecture.md, "Data")."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.urls import reverse

from . import model_choices
from .formats.registry import NAME_MAX_LENGTH, export_choices, import_choices

unit_interval = [MinValueValidator(0.0), MaxValueValidator(1.0)]
color_validator = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a color like #1f77b4.")

# Ten distinct colors (matplotlib's tab10), handed out to new classes in turn.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip


def _unit_interval_check(field: str, *, nullable: bool = False) -> models.CheckConstraint:
    condition = Q(**{f"{field}__gte": 0.0}) & Q(**{f"{field}__lte": 1.0})
    if nullable:
        condition |= Q(**{f"{field}__isnull": True})
    return models.CheckConstraint(condition=condition, name=f"%(class)s_{field}_in_0_1")


class Project(models.Model):
    class PromptMode(models.TextChoices):
        JOINT = "joint", "All classes in one caption"
        PER_CLASS = "per_class", "One pass per class"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    box_threshold = models.FloatField(default=0.35, validators=unit_interval)
    text_threshold = models.FloatField(default=0.25, validators=unit_interval)
    keep_threshold = models.FloatField(
        default=0.1, validators=unit_interval, help_text="Lowest detection score stored."
    )
    prompt_mode = models.CharField(max_length=16, choices=PromptMode.choices, default=PromptMode.JOINT)
    segment = models.BooleanField(default=True, help_text="Run SAM on every detected box.")
    # Names from the admin's lists (labeling.model_choices, checked in clean()), never a path or
    # a hub id typed by a manager: the workers resolve the name.
    detector = models.CharField(max_length=200, default="IDEA-Research/grounding-dino-tiny")
    segmenter = models.CharField(max_length=200, default="vit_b")
    # "Find more like this" on a project whose detector is not SAM 3 (Grounding DINO): a SAM 3
    # name from the admin's list, or blank (none: the review page says why it is unavailable).
    # A SAM 3 project uses its own detector and ignores this.
    exemplar_detector = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="The SAM 3 model that finds more objects like a selected one (blank: none).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            _unit_interval_check("box_threshold"),
            _unit_interval_check("text_threshold"),
            _unit_interval_check("keep_threshold"),
            models.CheckConstraint(
                condition=Q(keep_threshold__lte=F("box_threshold")),
                name="project_keep_threshold_le_box_threshold",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("project-detail", kwargs={"project_id": self.pk})

    def clean(self) -> None:
        errors = model_choices.model_errors(detector=self.detector, segmenter=self.segmenter)
        errors.update(model_choices.exemplar_errors(exemplar_detector=self.exemplar_detector))
        if (
            self.keep_threshold is not None
            and self.box_threshold is not None
            and self.keep_threshold > self.box_threshold
        ):
            errors["keep_threshold"] = "The lowest stored score cannot be above the box threshold."
        if errors:
            raise ValidationError(errors)


class LabelClass(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="classes")
    name = models.CharField(max_length=100)
    prompt = models.CharField(
        max_length=300, blank=True, help_text="Text given to the detector; defaults to the name."
    )
    color = models.CharField(max_length=7, default="#1f77b4", validators=[color_validator])
    box_threshold = models.FloatField(
        null=True, blank=True, validators=unit_interval, help_text="Overrides the project's threshold."
    )
    max_instances = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text='Keep at most this many per image (1 for referring expressions: "the mug on the left").',
    )
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        verbose_name_plural = "label classes"
        constraints = [
            models.UniqueConstraint(Lower("name"), "project", name="labelclass_unique_name_per_project"),
            _unit_interval_check("box_threshold", nullable=True),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.name = self.name.strip()
        self.prompt = self.prompt.strip() or self.name
        super().save(*args, **kwargs)

    @property
    def effective_box_threshold(self) -> float:
        return self.box_threshold if self.box_threshold is not None else self.project.box_threshold


class Membership(models.Model):
    class Role(models.TextChoices):
        MANAGER = "manager", "Manager"
        ANNOTATOR = "annotator", "Annotator"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint("user", "project", name="membership_unique_user_project")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class Invitation(models.Model):
    """A single-use link that makes someone a member: the manager gives an e-mail address and a
    role, the invitee picks a user name and a password on the link (labeling.services.invitations).
    Only a hash of the link's secret is stored; the link is shown once (and mailed)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.ANNOTATOR)
    token_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the link's secret")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "created_at"], name="invitation_project_idx")]

    def __str__(self) -> str:
        return f"{self.email} to {self.project} ({self.role})"


def _counter(help_text: str) -> models.IntegerField:
    return models.IntegerField(default=0, db_default=0, help_text=help_text)


class ProjectCounts(models.Model):
    """A project's figures, kept exact by database triggers in the same transaction as every
    write that changes them (labeling/db_counters.py): the pages and the API read this row instead
    of counting the project's rows. `manage.py project_counters` recomputes them and reports drift.
    """

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="counts")
    images_new = _counter("Images by status.")
    images_prelabeled = _counter("Images by status.")
    images_done = _counter("Images by status.")
    images_skipped = _counter("Images by status.")
    annotations_proposed = _counter("Annotations of every source by state.")
    annotations_accepted = _counter("Annotations of every source by state.")
    annotations_rejected = _counter("Annotations of every source by state.")
    model_proposed = _counter("The model's annotations (source model) by state.")
    model_accepted = _counter("The model's annotations (source model) by state.")
    model_rejected = _counter("The model's annotations (source model) by state.")
    model_edited = _counter("The model's annotations whose box or mask was edited (original_box kept).")
    classes = _counter("Label classes.")

    class Meta:
        verbose_name_plural = "project counts"

    def __str__(self) -> str:
        return f"Counts of project {self.project_id}"

    @property
    def images_total(self) -> int:
        return self.images_new + self.images_prelabeled + self.images_done + self.images_skipped

    @property
    def annotations_total(self) -> int:
        return self.annotations_proposed + self.annotations_accepted + self.annotations_rejected

    @property
    def model_total(self) -> int:
        return self.model_proposed + self.model_accepted + self.model_rejected


def image_upload_to(instance: Image, filename: str) -> str:
    return f"projects/{instance.project_id}/images/{instance.sha256[:2]}/{filename}"


def thumbnail_upload_to(instance: Image, filename: str) -> str:
    return f"projects/{instance.project_id}/thumbs/{instance.sha256[:2]}/{filename}"


class Image(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        PRELABELED = "prelabeled", "Pre-labeled"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=image_upload_to, max_length=300)
    thumbnail = models.FileField(upload_to=thumbnail_upload_to, max_length=300, blank=True)
    sha256 = models.CharField(max_length=64, help_text="Of the uploaded bytes; duplicates are refused.")
    width = models.PositiveIntegerField(help_text="As displayed (EXIF orientation applied).")
    height = models.PositiveIntegerField()
    original_name = models.CharField(max_length=255)
    size_bytes = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leased_images",
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who last submitted (or skipped) the image in review.",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Kept exact by the annotations' database triggers (labeling/db_counters.py), never by Django:
    # save() leaves them out of an UPDATE, so a stale instance cannot write an old count back.
    annotation_count = models.IntegerField(
        default=0, db_default=0, editable=False, help_text="Its annotations (every state and source)."
    )
    proposal_count = models.IntegerField(
        default=0, db_default=0, editable=False, help_text="Its annotations still proposed."
    )

    COUNT_FIELDS = ("annotation_count", "proposal_count")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint("project", "sha256", name="image_unique_sha256_per_project"),
            models.CheckConstraint(condition=Q(width__gt=0) & Q(height__gt=0), name="image_positive_size"),
        ]
        indexes = [
            # Review queue: next image of a project by status, in upload order.
            models.Index(fields=["project", "status", "id"], name="image_queue_idx"),
            # The grid and the API image list unfiltered: a project's images in id order.
            models.Index(fields=["project", "id"], name="image_project_id_idx"),
            # Expired leases and "who holds what".
            models.Index(fields=["assignee", "lease_expires_at"], name="image_lease_idx"),
            # "Who holds what" on the project page: only leased images are in it.
            models.Index(
                fields=["project", "lease_expires_at"],
                condition=Q(assignee__isnull=False),
                name="image_project_lease_idx",
            ),
            # "Previous image" in review, and each reviewer's figures on the dashboard.
            models.Index(fields=["reviewed_by", "project", "reviewed_at"], name="image_reviewed_idx"),
            # The dashboard's time windows (reviewed in the last 24 hours, 7 or 14 days) per project.
            models.Index(fields=["project", "reviewed_at"], name="image_project_reviewed_idx"),
            # The grid sorted by number of annotations (keyset on (count, id)), all or by status.
            models.Index(fields=["project", "annotation_count", "id"], name="image_project_count_idx"),
            models.Index(
                fields=["project", "status", "annotation_count", "id"], name="image_status_count_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.original_name

    def save(self, *args, **kwargs) -> None:
        """An UPDATE never writes the trigger-kept counts (an INSERT starts them at 0)."""
        if not self._state.adding and self.pk is not None and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in self.COUNT_FIELDS
            ]
        super().save(*args, **kwargs)


class Annotation(models.Model):
    class Source(models.TextChoices):
        MODEL = "model", "Model"
        HUMAN = "human", "Human"
        IMPORT = "import", "Import"

    class State(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    label_class = models.ForeignKey(LabelClass, on_delete=models.PROTECT, related_name="annotations")
    # Box in image pixels (top-left corner, width, height), as displayed.
    x = models.FloatField()
    y = models.FloatField()
    w = models.FloatField()
    h = models.FloatField()
    mask = models.JSONField(null=True, blank=True, help_text="COCO RLE: {size: [h, w], counts: str}.")
    polygons = models.JSONField(
        null=True, blank=True, help_text="List of parts; each a list of rings [x0, y0, x1, y1, ...]."
    )
    score = models.FloatField(null=True, blank=True)
    phrase = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.HUMAN)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PROPOSED)
    original_box = models.JSONField(
        null=True, blank=True, help_text="The model's box [x, y, w, h] when a proposal was edited."
    )
    original_mask = models.JSONField(null=True, blank=True)
    job = models.ForeignKey(
        "PrelabelJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Bounds against the image's own size are checked in clean() / the services: a check
            # constraint cannot read another table.
            models.CheckConstraint(
                condition=Q(x__gte=0) & Q(y__gte=0) & Q(w__gt=0) & Q(h__gt=0), name="annotation_box_positive"
            ),
            _unit_interval_check("score", nullable=True),
        ]
        indexes = [
            models.Index(fields=["image", "state"], name="annotation_image_state_idx"),
            # An image's annotations in id order (the review page, the API's paged list): no sort,
            # and no walk of the primary key hoping to meet the image's rows.
            models.Index(fields=["image", "id"], name="annotation_image_id_idx"),
            models.Index(fields=["label_class", "state"], name="annotation_class_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.label_class} on {self.image_id} ({self.state})"

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)

    def clean(self) -> None:
        errors = box_errors(self.box, width=self.image.width, height=self.image.height)
        if errors:
            raise ValidationError({"x": errors})
        if self.label_class_id and self.label_class.project_id != self.image.project_id:
            raise ValidationError({"label_class": "The class belongs to another project."})


BOX_TOLERANCE = 1e-6
MAX_POLYGON_VALUES = 200_000  # coordinates in all rings of one annotation (API and import alike)


def box_errors(box: tuple[float, float, float, float], *, width: int, height: int) -> list[str]:
    """Why a box [x, y, w, h] does not fit in a width × height image (empty when it does)."""
    x, y, w, h = box
    errors = []
    if w <= 0 or h <= 0:
        errors.append(f"Box width and height must be positive (got {w} × {h}).")
    if x < 0 or y < 0:
        errors.append(f"Box corner ({x}, {y}) is outside the image.")
    if x + w > width + BOX_TOLERANCE or y + h > height + BOX_TOLERANCE:
        errors.append(f"Box [{x}, {y}, {w}, {h}] goes past the image's {width} × {height} pixels.")
    return errors


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class JobStage(models.TextChoices):
    """What a pre-label job is doing now, shown from the start (the status says how it ended)."""

    QUEUED = "queued", "Queued"
    LOADING = "loading", "Loading models"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"  # cancelled or failed while a batch still runs
    STOPPED = "stopped", "Stopped"  # ended and no batch runs any more


class PrelabelJob(models.Model):
    Status = JobStatus
    Stage = JobStage

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    params = models.JSONField(default=dict, help_text="Snapshot: models, thresholds, classes, prompts.")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    annotation_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    stage = models.CharField(max_length=10, choices=JobStage.choices, default=JobStage.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    # When it ended (a cancel: the moment of the cancel) ...
    finished_at = models.DateTimeField(null=True, blank=True)
    # ... and when the last batch really stopped working on it (rates are over started → stopped).
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["project", "-created_at", "-id"], name="job_project_recent_id_idx"
            ),  # keyset pages
            models.Index(fields=["status"], name="job_status_idx"),  # the sweeper's scan
        ]
        constraints = [
            models.CheckConstraint(condition=Q(done__lte=F("total")), name="job_done_le_total"),
            # One active job per project: two would fight over the same images' proposals.
            models.UniqueConstraint(
                "project",
                condition=Q(status__in=["queued", "running"]),
                name="job_one_active_per_project",
            ),
        ]

    def __str__(self) -> str:
        return f"Pre-label job {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)

    @property
    def finished_count(self) -> int:
        return self.done + self.failed

    @property
    def percent(self) -> float:
        return 100.0 * self.finished_count / self.total if self.total else 0.0


class PrelabelJobItem(models.Model):
    """One image of a job: claimed exactly once (pending → done | failed), whatever the retries.

    While pending it may be out in a batch: `batch_token` names the batch (one Celery message),
    `dispatched_at` is when it was sent, `claimed_at` / `worker` when and by whom a worker took it,
    `heartbeat_at` the batch's last sign of life. A batch whose lease ran out (no heartbeat, or
    never taken) is handed out again by the sweeper; `attempts` counts the dispatches.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(PrelabelJob, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    annotation_count = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    batch_token = models.CharField(max_length=32, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint("job", "image", name="jobitem_unique_image_per_job")]
        indexes = [
            models.Index(fields=["job", "status"], name="jobitem_job_status_idx"),
            models.Index(fields=["batch_token"], name="jobitem_batch_idx", condition=~Q(batch_token="")),
        ]

    def __str__(self) -> str:
        return f"{self.image_id} in job {self.job_id} ({self.status})"


class WorkerBeat(models.Model):
    """A Celery worker's last sign of life and the queues it consumes (written by the worker every
    few seconds, see labeling/worker_beat.py): works on every broker, remote control or not."""

    hostname = models.CharField(max_length=200, unique=True)
    queues = models.CharField(max_length=200)
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} ({self.queues})"


class Export(models.Model):
    Status = JobStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    # The choices are the format registry's, read when needed (a callable): a new format needs no
    # migration. full_clean, the admin and get_format_display follow the registry.
    format = models.CharField(max_length=NAME_MAX_LENGTH, choices=export_choices)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    file = models.FileField(upload_to="exports/", max_length=300, blank=True)
    image_count = models.PositiveIntegerField(default=0)
    annotation_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [  # the list's keyset pages: (created_at, id) ranges, either way, with no sort
            models.Index(fields=["project", "-created_at", "-id"], name="export_project_recent_id_idx")
        ]

    def __str__(self) -> str:
        return f"{self.get_format_display()} export {self.pk} ({self.status})"


def import_upload_path(instance: ImportJob, filename: str) -> str:
    return f"imports/{instance.project_id}/{filename}"


class ImportJob(models.Model):
    """An annotation import run in the background (labeling.services.imports): the uploaded file
    waits in storage for the task and is deleted once the import has ended; the report stays."""

    Status = JobStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    format = models.CharField(max_length=NAME_MAX_LENGTH, choices=import_choices)  # a reader's import name
    options = models.JSONField(default=dict, blank=True)  # {"create_classes": bool}
    file = models.FileField(upload_to=import_upload_path, max_length=300, blank=True)
    file_name = models.CharField(max_length=255)  # as uploaded (the report's and the messages' name)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    images_done = models.PositiveIntegerField(default=0)  # images of the file matched or read so far
    images_total = models.PositiveIntegerField(default=0)
    annotation_count = models.PositiveIntegerField(default=0)  # created, once succeeded
    report = models.JSONField(null=True, blank=True)  # ImportReport.as_dict() once ended
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at", "-id"], name="import_project_recent_id_idx")
        ]

    def __str__(self) -> str:
        return f"{self.get_format_display()} import {self.pk} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)


class DashboardSnapshot(models.Model):
    """A project's whole-project quality figures (labeling.selectors.dashboard.model_quality),
    computed in the background (labeling.services.dashboard) so the dashboard page does not group
    all of a project's annotations on every view. `figures` is JSON (the rows the page shows),
    `fingerprint` what the project looked like when they were computed (counts and thresholds:
    the page compares it with today's to tell whether the project changed), `requested_at` when a
    recompute was last queued (at most one waits at a time)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="+")
    figures = models.JSONField(null=True, blank=True)
    fingerprint = models.JSONField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Dashboard of project {self.project_id} as of {self.computed_at}"


class FindMoreRequest(models.Model):
    """One "find more like this" asked on an image (labeling.services.find_more): the selected
    annotation's box is the positive exemplar, the image's rejected proposals' boxes (of its
    class) the negative ones, both as they were when asked; a worker of the interactive queue
    runs SAM 3 with them and adds the new proposals (their ids in `annotation_ids`)."""

    Status = JobStatus

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="find_more_requests")
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )  # the exemplar (null once deleted: its box is kept below)
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    detector = models.CharField(max_length=200)  # the SAM 3 name used (the admin's list)
    positive_boxes = models.JSONField(default=list)  # [[x, y, w, h], ...]
    negative_boxes = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    found_count = models.PositiveIntegerField(default=0)  # what SAM 3 returned
    created_count = models.PositiveIntegerField(default=0)  # new proposals, once deduplicated
    annotation_ids = models.JSONField(default=list)  # the proposals it created
    error = models.TextField(blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["image", "status"], name="find_more_image_status_idx")]

    def __str__(self) -> str:
        return f"Find more on image {self.image_id} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)


class PromptLabRun(models.Model):
    """A prompt lab run (labeling.services.prompt_lab): candidate prompts for one class measured
    on a seeded sample of images already reviewed as done, in the background (gpu queue). `params`
    is the snapshot the run uses (models, thresholds); `image_ids` the sample, in order."""

    Status = JobStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompt_lab_runs")
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sample_size = models.PositiveIntegerField(help_text="Images asked for (the sample may hold fewer).")
    seed = models.BigIntegerField(default=0)
    image_ids = models.JSONField(default=list, help_text="The sampled images' ids, in sample order.")
    params = models.JSONField(default=dict, help_text="Snapshot: models, thresholds, the class's prompt.")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="The whole run, started → finished.")
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="The worker's last sign of life (before each batch and image)."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at", "-id"], name="promptlab_project_recent_idx")
        ]

    def __str__(self) -> str:
        return f"Prompt lab run {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)


class PromptLabCandidate(models.Model):
    """One candidate of a run: a prompt and a detector, with its figures once measured
    (`scores`: labeling.evaluation.Scores.as_dict()). The class's prompt at the start is the
    baseline, always the first candidate."""

    Status = JobStatus

    run = models.ForeignKey(PromptLabRun, on_delete=models.CASCADE, related_name="candidates")
    position = models.PositiveSmallIntegerField()
    prompt = models.CharField(max_length=300)
    detector = models.CharField(max_length=200)
    is_baseline = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    scores = models.JSONField(null=True, blank=True)
    seconds_per_image = models.FloatField(
        null=True, blank=True, help_text="Model time per image (measured when the detections were made)."
    )
    cached_images = models.PositiveIntegerField(
        default=0, help_text="Images whose detections came from the cache."
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint("run", "position", name="promptlab_candidate_position")]

    def __str__(self) -> str:
        return f"{self.prompt!r} with {self.detector} ({self.status})"


class DetectionCache(models.Model):
    """The stored detections of one prompt on one image: `key` is the sha256 of what makes them
    (detector source, models mode, masks setting, prompt, thresholds, image sha256, the lowest
    score kept; labeling.services.prompt_lab.cache_key). A prompt lab run with the same prompt on
    the same images reads these instead of running the models. `proposals`: [{box, score, mask}]."""

    key = models.CharField(max_length=64, unique=True)
    image_sha256 = models.CharField(max_length=64)
    prompt = models.CharField(max_length=300)
    detector = models.CharField(max_length=300)
    proposals = models.JSONField(default=list)
    seconds = models.FloatField(default=0.0, help_text="Model time spent on this image when computed.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "detection cache entries"

    def __str__(self) -> str:
        return f"{self.prompt!r} on {self.image_sha256[:10]}"
