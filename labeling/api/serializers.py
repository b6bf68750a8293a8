"""API input and output shapes. Inputs are strict: a field the endpoint does not take is a 400."""

from __future__ import annotations

import math

from django.urls import reverse
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer

from labeling.formats import export_choices, import_choices
from labeling.selectors.prelabel import job_progress
from labeling.services.prelabel import SCOPES

from ..models import Annotation, Export, Image, LabelClass, Membership, PrelabelJob, Project


class StrictMixin:
    """Refuse fields the serializer does not write (read-only ones included): no silent ignores."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data.keys()) - writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class Strict(StrictMixin, serializers.Serializer):
    pass


class UnitFloat(serializers.FloatField):
    """A finite number from 0 to 1."""

    def __init__(self, **kwargs):
        super().__init__(min_value=0.0, max_value=1.0, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class FiniteFloat(serializers.FloatField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


# Auth ------------------------------------------------------------------------------------------


class TokenRequestSerializer(StrictMixin, AuthTokenSerializer):
    pass


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)


# Projects and classes --------------------------------------------------------------------------


class LabelClassSerializer(StrictMixin, serializers.ModelSerializer):
    prompt = serializers.CharField(max_length=300, required=False, allow_blank=True)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False, allow_blank=True)
    box_threshold = UnitFloat(required=False, allow_null=True)

    class Meta:
        model = LabelClass
        fields = ["id", "name", "prompt", "color", "box_threshold", "max_instances", "order"]
        read_only_fields = ["id", "order"]


class ClassInputSerializer(LabelClassSerializer):
    class Meta(LabelClassSerializer.Meta):
        fields = ["name", "prompt", "color", "box_threshold", "max_instances"]


class ProjectSerializer(StrictMixin, serializers.ModelSerializer):
    box_threshold = UnitFloat(required=False)
    text_threshold = UnitFloat(required=False)
    keep_threshold = UnitFloat(required=False)
    image_count = serializers.IntegerField(read_only=True)
    class_count = serializers.IntegerField(read_only=True)
    role = serializers.CharField(read_only=True, source="api_role", allow_null=True)

    class Meta:
        model = Project
        fields = [
            "id", "name", "description", "box_threshold", "text_threshold", "keep_threshold",
            "prompt_mode", "segment", "detector", "segmenter", "created_at", "updated_at",
            "image_count", "class_count", "role",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at", "updated_at"]


class ProjectCreateSerializer(ProjectSerializer):
    classes = ClassInputSerializer(many=True, required=False, write_only=True)

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "classes"]


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "username", "role", "created_at"]
        read_only_fields = fields


class MembershipInputSerializer(Strict):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.choices)


# Images ----------------------------------------------------------------------------------------


class ImageSerializer(serializers.ModelSerializer):
    annotation_count = serializers.IntegerField(read_only=True)
    proposal_count = serializers.IntegerField(read_only=True)
    file_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = [
            "id", "project", "original_name", "width", "height", "format", "size_bytes", "sha256",
            "status", "version", "created_at", "reviewed_at", "annotation_count", "proposal_count",
            "file_url", "thumbnail_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_file_url(self, image: Image) -> str:
        return reverse("image-file", kwargs={"image_id": image.pk})

    def get_thumbnail_url(self, image: Image) -> str:
        return reverse("image-thumbnail", kwargs={"image_id": image.pk})


class ImageFilterSerializer(Strict):
    """The only filters the image list takes (no client-chosen ORM lookups)."""

    status = serializers.ChoiceField(choices=Image.Status.choices, required=False)
    class_id = serializers.IntegerField(required=False, min_value=1)
    has_proposals = serializers.BooleanField(required=False, allow_null=True, default=None)
    page = serializers.IntegerField(required=False, min_value=1)


class UploadSerializer(Strict):
    files = serializers.ListField(child=serializers.FileField(), min_length=1, max_length=1000)


class IngestReportSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.DictField())
    duplicates = serializers.ListField(child=serializers.DictField())
    errors = serializers.ListField(child=serializers.DictField())
    skipped = serializers.ListField(child=serializers.DictField())


class ImageCloseSerializer(Strict):
    version = serializers.IntegerField(required=False, min_value=1)


class ImageCloseResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    version = serializers.IntegerField()


# Annotations -----------------------------------------------------------------------------------


class AnnotationSerializer(serializers.Serializer):
    """The shape review.annotation_json gives (the canvas's too)."""

    id = serializers.IntegerField()
    class_id = serializers.IntegerField()
    box = serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4)
    mask = serializers.JSONField(allow_null=True)
    polygons = serializers.JSONField(allow_null=True)
    score = serializers.FloatField(allow_null=True)
    phrase = serializers.CharField()
    source = serializers.ChoiceField(choices=Annotation.Source.choices)
    state = serializers.ChoiceField(choices=Annotation.State.choices)
    version = serializers.IntegerField()
    edited = serializers.BooleanField()


class AnnotationCreateSerializer(Strict):
    class_id = serializers.IntegerField()
    box = serializers.ListField(child=FiniteFloat(), min_length=4, max_length=4)
    mask = serializers.JSONField(required=False, allow_null=True)
    polygons = serializers.JSONField(required=False, allow_null=True)


class AnnotationUpdateSerializer(Strict):
    version = serializers.IntegerField(required=False, min_value=1, help_text="Or the If-Match header.")
    state = serializers.ChoiceField(choices=Annotation.State.choices, required=False)
    class_id = serializers.IntegerField(required=False)
    box = serializers.ListField(child=FiniteFloat(), min_length=4, max_length=4, required=False)
    mask = serializers.JSONField(required=False, allow_null=True)
    polygons = serializers.JSONField(required=False, allow_null=True)


class VersionSerializer(Strict):
    version = serializers.IntegerField(required=False, min_value=1, help_text="Or the If-Match header.")


class AcceptAboveSerializer(Strict):
    min_score = UnitFloat(help_text="Accept every proposal of the image scoring at least this.")


class BulkResultSerializer(serializers.Serializer):
    annotations = AnnotationSerializer(many=True)
    conflicts = serializers.ListField(child=serializers.IntegerField())
    current = AnnotationSerializer(many=True)


class SegmentSerializer(Strict):
    points = serializers.JSONField(required=False, help_text="[[x, y], ...] in image pixels.")
    labels = serializers.JSONField(required=False, help_text="1 (object) or 0 (background) per point.")
    box = serializers.JSONField(required=False, help_text="[x, y, w, h] in image pixels.")
    annotation = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="An annotation of this image to refine: its box and mask are the starting point.",
    )
    object = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,64}$",
        required=False,
        help_text="The client's token for the object being segmented: each click on the same object "
        "starts from the previous click's mask (kept on the server for a few minutes).",
    )
    retry = serializers.BooleanField(
        required=False, help_text="Try again an embedding that failed (forgets the failure)."
    )


# Jobs ------------------------------------------------------------------------------------------


class JobSerializer(serializers.ModelSerializer):
    percent = serializers.FloatField(read_only=True)
    images_per_minute = serializers.SerializerMethodField(help_text="Over the running time; null before any.")
    eta_seconds = serializers.SerializerMethodField(help_text="While active, after the first image.")

    class Meta:
        model = PrelabelJob
        fields = [
            "id", "project", "status", "stage", "params", "total", "done", "failed", "annotation_count",
            "percent", "images_per_minute", "eta_seconds", "error", "created_at", "started_at",
            "finished_at", "stopped_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_images_per_minute(self, job: PrelabelJob) -> float | None:
        return job_progress(job).rate_per_minute

    def get_eta_seconds(self, job: PrelabelJob) -> float | None:
        return job_progress(job).eta_seconds


class JobStartSerializer(Strict):
    class_ids = serializers.ListField(child=serializers.IntegerField(), required=False, allow_null=True)
    box_threshold = UnitFloat(required=False, allow_null=True)
    text_threshold = UnitFloat(required=False, allow_null=True)
    scope = serializers.ChoiceField(choices=list(SCOPES), default="new")


# Exports and imports ---------------------------------------------------------------------------


class ExportSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id", "project", "format", "options", "status", "image_count", "annotation_count",
            "error", "created_at", "finished_at", "download_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_download_url(self, export: Export) -> str | None:
        if export.status != Export.Status.SUCCEEDED or not export.file:
            return None
        return reverse("api-export-download", kwargs={"export_id": export.pk})


class RegistryChoiceField(serializers.ChoiceField):
    """A choice among the format registry's, read each time a serializer is made (DRF copies
    declared fields per serializer, calling __init__ again): a format registered later counts."""

    def __init__(self, choices_of, **kwargs):
        self.choices_of = choices_of
        super().__init__(choices=choices_of(), **kwargs)


class ExportStartSerializer(Strict):
    format = RegistryChoiceField(export_choices)
    options = serializers.DictField(required=False, default=dict)


class ImportSerializer(Strict):
    file = serializers.FileField()
    format = RegistryChoiceField(import_choices)
    create_classes = serializers.BooleanField(required=False, default=False)


class ImportReportSerializer(serializers.Serializer):
    format = serializers.CharField()
    file = serializers.CharField()
    ok = serializers.BooleanField()
    created_annotations = serializers.IntegerField()
    matched_images = serializers.ListField(child=serializers.DictField())
    created_images = serializers.ListField(child=serializers.DictField())
    created_classes = serializers.ListField(child=serializers.CharField())
    skipped = serializers.ListField(child=serializers.DictField())
    errors = serializers.ListField(child=serializers.DictField())
    more_errors = serializers.IntegerField()
