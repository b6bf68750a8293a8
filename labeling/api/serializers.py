"""API input and output shapes. Input is validated here, once: strict types (a JSON number is
not a string, a boolean is not an integer), bounds against the image in the serializer's context
(`context={"image": image}`), and a field the endpoint does not take is a 400. The services get
clean, typed values and enforce the business rules (versions, leases, states, roles).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
from axes.helpers import get_cool_off, get_lockout_message
from django.urls import reverse
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import APIException, Throttled
from rest_framework.settings import api_settings

from inference.masks import rle_runs_checked
from labeling import model_choices
from labeling.formats.registry import export_choices, import_choices
from labeling.selectors.navigation import (
    FILMSTRIP_DEFAULT,
    FILMSTRIP_MAX,
    NAME_MATCHES_MAX,
    NAME_PREFIX_MAX,
    QUEUE_CHOICES,
)
from labeling.selectors.prelabel import job_progress
from labeling.services.prelabel import SCOPES
from labeling.services.prompt_lab import DEFAULT_SAMPLE, MAX_CANDIDATES, MAX_SAMPLE, PROMPT_MAX
from labeling.services.review import MAX_BULK_UPDATES, StateUpdate

from ..models import (
    MAX_POLYGON_VALUES,
    Annotation,
    Export,
    Image,
    ImportJob,
    Invitation,
    LabelClass,
    Membership,
    PrelabelJob,
    Project,
    PromptLabCandidate,
    PromptLabRun,
    box_errors,
)

MAX_SEGMENT_POINTS = 64
# Ids and versions fit the database's bigint; a JSON number fits a float (finite).
MAX_ID = 2**63 - 1
MAX_NUMBER = sys.float_info.max


class StrictMixin:
    """Refuse fields the serializer does not write (read-only ones included): no silent ignores;
    and a body that is not a JSON object, with a sentence that says so."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            where = "The body" if self.parent is None else "This"
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: [f"{where} must be a JSON object."]}
            )
        writable = {name for name, field in self.fields.items() if not field.read_only}
        unknown = sorted(set(data.keys()) - writable)
        if unknown:
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: [f"Unknown field(s): {', '.join(unknown)}."]}
            )
        return super().to_internal_value(data)


class Strict(StrictMixin, serializers.Serializer):
    pass


class UnitFloat(serializers.FloatField):
    """A finite number from 0 to 1."""

    def __init__(self, **kwargs):
        super().__init__(min_value=0.0, max_value=1.0, **kwargs)

    def to_internal_value(self, data):
        if is_integer(data) and not is_number(data):
            self.fail("invalid")  # past a float's range (float() would raise OverflowError)
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


# Strict JSON values --------------------------------------------------------------------------------


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite JSON number that a float holds (not a boolean, not a string; an integer of 400
    digits is not one: comparing it with the largest float does not convert it)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= MAX_NUMBER


def numbers_array(values: list) -> np.ndarray | None:
    """The list as float64 when it holds only finite numbers (not booleans); None otherwise.
    Checked in C (types, conversion, finiteness): a long list costs no Python loop."""
    if not set(map(type, values)) <= {int, float}:
        return None
    try:
        array = np.asarray(values, dtype=np.float64)
    except OverflowError:
        return None
    return array if np.isfinite(array).all() else None


def _image(field: serializers.Field) -> Image:
    image = field.context.get("image")
    if image is None:
        raise AssertionError(f"{type(field.root).__name__} needs the image in its context")
    return image


class JSONInteger(serializers.IntegerField):
    """An integer as JSON writes it: "1", 1.0 and true are refused, and so is one past a bigint
    (max_value defaults to MAX_ID). `message` is the reason given (formatted with {value}); by
    default "<field> must be an integer"."""

    def __init__(self, *, message: str = "", **kwargs) -> None:
        kwargs.setdefault("max_value", MAX_ID)
        kwargs.setdefault("min_value", -MAX_ID)
        super().__init__(**kwargs)
        self.message = message

    def to_internal_value(self, data):
        if not is_integer(data) or not self.min_value <= data <= self.max_value:
            default = (
                "{name} must be a positive integer" if self.min_value == 1 else "{name} must be an integer"
            )
            if is_integer(data) and data > self.max_value:
                default += f" up to {self.max_value}"
            raise serializers.ValidationError(
                (self.message or default + " (got {value!r:.40}).").format(name=self.field_name, value=data)
            )
        return data


class JSONUnitFloat(serializers.FloatField):
    """A JSON number from 0 to 1 (not a string)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(min_value=0.0, max_value=1.0, **kwargs)

    def to_internal_value(self, data):
        if not is_number(data) or not 0.0 <= data <= 1.0:
            null = ", or null" if self.allow_null else ""
            raise serializers.ValidationError(
                f"{self.field_name} must be a number from 0 to 1{null} (got {data!r:.40})."
            )
        return float(data)


class JSONBoolean(serializers.BooleanField):
    """true or false, nothing else."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            raise serializers.ValidationError(f"{self.field_name} must be true or false.")
        return data


class StateField(serializers.ChoiceField):
    def __init__(self, **kwargs) -> None:
        states = ", ".join(Annotation.State.values)
        super().__init__(
            choices=Annotation.State.choices,
            error_messages={"invalid_choice": f"state must be one of {states} (got {{input!r:.40}})."},
            **kwargs,
        )

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class ClassIdField(JSONInteger):
    """The id of a class of the image's project."""

    def to_internal_value(self, data):
        class_id = super().to_internal_value(data)
        if not LabelClass.objects.filter(pk=class_id, project_id=_image(self).project_id).exists():
            raise serializers.ValidationError(f"Class {class_id} is not a class of this project.")
        return class_id


class BoxField(serializers.ListField):
    """[x, y, width, height] in pixels, inside the image: a tuple of four floats."""

    SHAPE = "box must be [x, y, width, height] in pixels: four numbers."

    def __init__(self, **kwargs) -> None:
        super().__init__(child=serializers.FloatField(), min_length=4, max_length=4, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, list | tuple) or len(data) != 4 or not all(map(is_number, data)):
            raise serializers.ValidationError(self.SHAPE)
        box = tuple(float(v) for v in data)
        image = _image(self)
        errors = box_errors(box, width=image.width, height=image.height)
        if errors:
            raise serializers.ValidationError(errors)
        return box


class MaskField(serializers.JSONField):
    """A COCO RLE of the image's size: {"size": [height, width], "counts": string or run lengths}."""

    def to_internal_value(self, data):
        mask = data  # not JSONField's check (a json.dumps of it all): the shape is checked here
        if mask is None:
            return None
        if not isinstance(mask, dict) or set(mask) != {"size", "counts"}:
            raise serializers.ValidationError(
                'mask must be a COCO RLE: {"size": [height, width], "counts": ...}.'
            )
        image = _image(self)
        size, counts = mask["size"], mask["counts"]
        if size != [image.height, image.width]:
            raise serializers.ValidationError(
                f"mask size must be [height, width] = [{image.height}, {image.width}] (got {size!r:.40})."
            )
        if isinstance(counts, list | str) and len(counts) > image.height * image.width + 1:
            # Counted before any run is read: no mask of this size has that many runs.
            raise serializers.ValidationError(
                f"mask is not a valid COCO RLE: more runs than the image's {image.width} × "
                f"{image.height} pixels."
            )
        try:
            rle_runs_checked(counts, height=image.height, width=image.width)
        except ValueError as exc:
            raise serializers.ValidationError(f"mask is not a valid COCO RLE: {exc}.") from exc
        return {"size": [image.height, image.width], "counts": counts}


class PolygonsField(serializers.JSONField):
    """Parts → rings (outer first, then holes) → [x0, y0, x1, y1, ...], inside the image."""

    SHAPE = "polygons must be a list of parts, each a list of rings [x0, y0, x1, y1, ...] (3+ points)."

    def to_internal_value(self, data):
        polygons = data  # not JSONField's check (a json.dumps of it all): the shape is checked here
        if polygons is None:
            return None
        if not isinstance(polygons, list):
            raise serializers.ValidationError(self.SHAPE)
        image = _image(self)
        # The sizes first (a count per ring, no value read): a huge polygon is refused at once.
        total = 0
        for part in polygons:
            if not isinstance(part, list) or not part:
                raise serializers.ValidationError(self.SHAPE)
            for ring in part:
                if not isinstance(ring, list) or len(ring) < 6 or len(ring) % 2:
                    raise serializers.ValidationError(self.SHAPE)
                total += len(ring)
                if total > MAX_POLYGON_VALUES:
                    raise serializers.ValidationError(
                        f"polygons have more than {MAX_POLYGON_VALUES} coordinates."
                    )
        for part in polygons:
            for ring in part:
                values = numbers_array(ring)
                if values is None:
                    raise serializers.ValidationError(self.SHAPE)
                xs, ys = values[0::2], values[1::2]
                if xs.min() < 0 or ys.min() < 0 or xs.max() > image.width or ys.max() > image.height:
                    raise serializers.ValidationError(
                        f"A polygon goes outside the {image.width} × {image.height} image."
                    )
        return polygons


class PointsField(serializers.JSONField):
    """Click points [[x, y], ...] inside the image (at most MAX_SEGMENT_POINTS): a list of tuples."""

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) > MAX_SEGMENT_POINTS:
            raise serializers.ValidationError(f"At most {MAX_SEGMENT_POINTS} points.")
        points = super().to_internal_value(data) or []
        if not isinstance(points, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(is_number(v) for v in p) for p in points
        ):
            raise serializers.ValidationError("points must be a list of [x, y] pairs of numbers.")
        image = _image(self)
        for x, y in points:
            if not (0 <= x <= image.width and 0 <= y <= image.height):
                raise serializers.ValidationError(
                    f"Point ({x}, {y}) is outside the {image.width} × {image.height} image."
                )
        return [(float(x), float(y)) for x, y in points]


class LabelsField(serializers.JSONField):
    """One label per point: 1 (the object) or 0 (background)."""

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) > MAX_SEGMENT_POINTS:
            raise serializers.ValidationError(f"At most {MAX_SEGMENT_POINTS} labels.")
        labels = super().to_internal_value(data) or []
        if not isinstance(labels, list) or not all(
            label in (0, 1) and isinstance(label, int) and not isinstance(label, bool) for label in labels
        ):
            raise serializers.ValidationError("labels must be a list of 1 (positive) and 0 (negative).")
        return labels


class VersionRequired(APIException):
    status_code = 428
    default_detail = 'Say which version you edited: send the header If-Match: "<version>".'
    default_code = "version_required"


class VersionedSerializer(Strict):
    """A write made on a version of an annotation: the If-Match header ("3", W/"3" or 3, given as
    `context={"if_match": ...}`) or the body's "version"; neither is a 428."""

    version = JSONInteger(required=False, min_value=1, help_text="Or the If-Match header.")

    def validate(self, attrs: dict) -> dict:
        header = (self.context.get("if_match") or "").strip()
        if header:
            value = header.removeprefix("W/").strip().strip('"')
            if (
                not (value.isascii() and value.isdigit() and len(value) <= 19)
                or not 1 <= int(value) <= MAX_ID
            ):
                raise serializers.ValidationError(
                    {
                        "If-Match": [
                            'If-Match must be the annotation\'s version in quotes, e.g. If-Match: "3".'
                        ]
                    }
                )
            attrs["version"] = int(value)
        elif attrs.get("version") is None:
            raise VersionRequired()
        return attrs


# Auth ------------------------------------------------------------------------------------------


class TokenRequestSerializer(StrictMixin, AuthTokenSerializer):
    """DRF's user name / password check, which authenticates with the request (context["request"])
    so that the failed-login limits (django-axes) count it; a locked-out caller gets 429 with the
    reason and Retry-After, not the plain 400 of a wrong password."""

    def validate(self, attrs):
        request = self.context.get("request")
        try:
            return super().validate(attrs)
        except serializers.ValidationError:
            if getattr(request, "axes_locked_out", False):
                cool_off = get_cool_off(request)
                raise Throttled(
                    wait=cool_off.total_seconds() if cool_off else None, detail=get_lockout_message()
                ) from None
            raise


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

    # A text checked against the admin's list (not a ChoiceField: a server listing no SAM 3 model
    # would give the schema an empty enum).
    exemplar_detector = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text='The SAM 3 model of "find more like this" when the detector is not SAM 3: one '
        "of the listed detectors that is SAM 3, or blank (none).",
    )

    def get_fields(self) -> dict:
        # The admin's lists, read when the fields are first asked for (settings may change), not
        # when an instance is made: the schema's instances are made at import time, and their
        # choices must be those of the schema's run. Project.clean() checks again.
        fields = super().get_fields()
        fields["detector"] = serializers.ChoiceField(choices=model_choices.detector_choices(), required=False)
        fields["segmenter"] = serializers.ChoiceField(
            choices=model_choices.segmenter_choices(), required=False
        )
        return fields

    def validate_exemplar_detector(self, value: str) -> str:
        errors = model_choices.exemplar_errors(exemplar_detector=value)
        if errors:
            raise serializers.ValidationError(errors["exemplar_detector"])
        return value

    class Meta:
        model = Project
        fields = [
            "id", "name", "description", "box_threshold", "text_threshold", "keep_threshold",
            "prompt_mode", "segment", "detector", "segmenter", "exemplar_detector", "created_at",
            "updated_at", "image_count", "class_count", "role",
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
    """Who to add: `username` (a user name, or an e-mail address) or `email`, one of them. An
    address that matches no account gets an invitation (201 with its link, answered once)."""

    username = serializers.CharField(
        max_length=254, required=False, help_text="A user name or an e-mail address."
    )
    email = serializers.EmailField(
        required=False, help_text="An e-mail address: its account, else an invitation."
    )
    role = serializers.ChoiceField(choices=Membership.Role.choices)

    def validate(self, attrs):
        given = [attrs[name] for name in ("username", "email") if attrs.get(name)]
        if len(given) != 1:
            raise serializers.ValidationError("Give either username or email (one of them).")
        return {"identifier": given[0], "role": attrs["role"]}


class PendingInvitationSerializer(serializers.ModelSerializer):
    """A pending invitation (its link is never answered again: only its hash is kept)."""

    invited_by = serializers.CharField(source="invited_by.username", read_only=True, default=None)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at"]
        read_only_fields = fields


class InvitationSerializer(serializers.ModelSerializer):
    """A new invitation: `link` is the single-use URL, answered this once (only its hash is kept);
    `mailed` whether it was e-mailed to the address."""

    invited_by = serializers.CharField(source="invited_by.username", read_only=True, default=None)
    link = serializers.CharField(read_only=True)
    mailed = serializers.BooleanField(read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at", "link", "mailed"]
        read_only_fields = fields


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
    class_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    has_proposals = serializers.BooleanField(required=False, allow_null=True, default=None)
    cursor = serializers.CharField(
        required=False, max_length=200, help_text="The page: a `next` or `previous` link's cursor."
    )


class UploadSerializer(Strict):
    files = serializers.ListField(child=serializers.FileField(), min_length=1, max_length=1000)


class IngestReportSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.DictField())
    duplicates = serializers.ListField(child=serializers.DictField())
    errors = serializers.ListField(child=serializers.DictField())
    skipped = serializers.ListField(child=serializers.DictField())


class ImageCloseSerializer(Strict):
    version = JSONInteger(
        required=False, allow_null=True, min_value=1, help_text="The image's version the review was made on."
    )


class LeaseClaimSerializer(Strict):
    version = JSONInteger(
        required=False,
        min_value=1,
        help_text="The image's version the page already has the data of (prefetched): the same version "
        "answers only the lease, with unchanged: true.",
    )


class QueueChoiceSerializer(Strict):
    """The review queue a page works through: the usual one, or the skipped images."""

    queue = serializers.ChoiceField(choices=QUEUE_CHOICES, required=False)


class FilmstripQuerySerializer(Strict):
    """A window of the project's images by id: around an image, or more before / after an id
    (at most one of the three; none: from the first image on)."""

    around = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    before = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    after = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=FILMSTRIP_MAX, default=FILMSTRIP_DEFAULT
    )

    def validate(self, attrs):
        given = [name for name in ("around", "before", "after") if name in attrs]
        if len(given) > 1:
            raise serializers.ValidationError("Give one of around, before and after, not several.")
        if not given:
            attrs["after"] = 0  # none: from the project's first image on
        return attrs


class NameSearchSerializer(Strict):
    prefix = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=NAME_PREFIX_MAX,
        trim_whitespace=False,
        help_text="The start of the original name, as typed; empty: no image.",
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=NAME_MATCHES_MAX, default=10)

    def validate_prefix(self, value):
        if "\x00" in value:
            raise serializers.ValidationError("The name cannot contain a NUL character.")
        return value


class ImageCloseResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    version = serializers.IntegerField()
    next = serializers.CharField(help_text="The review queue: the next image to review, leased to you.")


# Annotations -----------------------------------------------------------------------------------


class AnnotationSerializer(serializers.Serializer):
    """The shape selectors.review.annotation_json gives (the review page's too)."""

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
    """A drawn annotation; the image is in the context."""

    class_id = ClassIdField()
    box = BoxField()
    mask = MaskField(required=False, allow_null=True)
    polygons = PolygonsField(required=False, allow_null=True)


class AnnotationUpdateSerializer(VersionedSerializer):
    """Triage or edit an annotation; its image is in the context. At least one change."""

    CHANGES = ("state", "class_id", "box", "mask", "polygons")

    state = StateField(required=False)
    class_id = ClassIdField(required=False)
    box = BoxField(required=False)
    mask = MaskField(
        required=False,
        allow_null=True,
        help_text="COCO RLE at the image's size. Sent without polygons (or with null), the server "
        "traces its polygons and, unless a box is given, its box (the brush and the eraser).",
    )
    polygons = PolygonsField(
        required=False,
        allow_null=True,
        help_text="Parts of rings [x0, y0, ...]. Sent without a mask, the server rasterises the mask "
        "again (when the annotation has one) and, unless a box is given, takes their box (vertex editing).",
    )

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        if not any(name in attrs for name in self.CHANGES):
            raise serializers.ValidationError(
                "Nothing to change: give state, class_id, box, mask and/or polygons."
            )
        return attrs


class VersionSerializer(VersionedSerializer):
    pass


class StateUpdateSerializer(Strict):
    id = JSONInteger()
    version = JSONInteger(min_value=1)
    state = StateField()


class AnnotationStatesSerializer(Strict):
    """{"updates": [{id, version, state}, ...]}: each annotation once, at most MAX_BULK_UPDATES."""

    updates = StateUpdateSerializer(
        many=True,
        max_length=MAX_BULK_UPDATES,
        error_messages={
            "not_a_list": 'updates must be a list of {{"id", "version", "state"}}.',
            "max_length": "At most {max_length} updates at once.",
        },
    )

    def validate_updates(self, updates: list[dict]) -> list[StateUpdate]:
        if len({u["id"] for u in updates}) != len(updates):
            raise serializers.ValidationError("An annotation appears twice in the updates.")
        return [StateUpdate(**u) for u in updates]


class AcceptAboveSerializer(Strict):
    min_score = UnitFloat(help_text="Accept every proposal of the image scoring at least this.")


class BulkResultSerializer(serializers.Serializer):
    annotations = AnnotationSerializer(many=True)
    conflicts = serializers.ListField(child=serializers.IntegerField())
    current = AnnotationSerializer(many=True)


class FindMoreStartSerializer(Strict):
    """ "Find more like this": the annotation of this image whose box is the example."""

    annotation = JSONInteger(
        min_value=1,
        message="annotation must be the id of an annotation of this image.",
        help_text="The annotation (of this image) to find more like: its box is the positive example; "
        "the image's rejected annotations of its class are the negative ones.",
    )


class SegmentSerializer(Strict):
    """Click-to-segment input, in image pixels (the image is in the context)."""

    points = PointsField(required=False, allow_null=True, help_text="[[x, y], ...] in image pixels.")
    labels = LabelsField(required=False, allow_null=True, help_text="1 (object) or 0 (background) per point.")
    box = BoxField(required=False, allow_null=True, help_text="[x, y, w, h] in image pixels.")
    annotation = JSONInteger(
        required=False,
        allow_null=True,
        min_value=1,
        message="annotation must be the id of an annotation of this image.",
        help_text="An annotation of this image to refine: its box and mask are the starting point.",
    )
    object = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,64}$",
        required=False,
        allow_null=True,
        error_messages={"invalid": "object must be 1 to 64 letters, digits, - or _."},
        help_text="The client's token for the object being segmented: each click on the same object "
        "starts from the previous click's mask (kept on the server for a few minutes).",
    )
    retry = JSONBoolean(
        required=False, allow_null=True, help_text="Try again an embedding that failed (forgets the failure)."
    )

    def to_internal_value(self, data):
        if (
            isinstance(data, Mapping)
            and data.get("object") is not None
            and not isinstance(data["object"], str)
        ):
            raise serializers.ValidationError({"object": ["object must be a string."]})
        return super().to_internal_value(data)

    def validate(self, attrs: dict) -> dict:
        points, labels = attrs.get("points") or [], attrs.get("labels") or []
        if len(points) != len(labels):
            raise serializers.ValidationError("Give one label per point.")
        if not points and attrs.get("box") is None and not attrs.get("annotation"):
            raise serializers.ValidationError("Give at least one point or a box.")
        return {
            "points": points,
            "labels": labels,
            "box": attrs.get("box"),
            "annotation": attrs.get("annotation"),
            "object": attrs.get("object") or None,
            "retry": bool(attrs.get("retry")),
        }


class ThresholdSerializer(Strict):
    """The review slider's threshold: the project's, or one class's (null clears the class's own)."""

    box_threshold = JSONUnitFloat(allow_null=True)
    class_id = JSONInteger(
        required=False, allow_null=True, help_text="A class of the project; none: the project."
    )

    def validate(self, attrs: dict) -> dict:
        if attrs.get("class_id") is None and attrs["box_threshold"] is None:
            raise serializers.ValidationError(
                {"box_threshold": ["box_threshold must be a number from 0 to 1 (got None)."]}
            )
        return {"box_threshold": attrs["box_threshold"], "class_id": attrs.get("class_id")}


class ThresholdResultSerializer(serializers.Serializer):
    box_threshold = serializers.FloatField(allow_null=True)
    class_id = serializers.IntegerField(allow_null=True)


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
    class_ids = serializers.ListField(
        child=JSONInteger(min_value=1), required=False, allow_null=True, max_length=1000
    )
    box_threshold = UnitFloat(required=False, allow_null=True)
    text_threshold = UnitFloat(required=False, allow_null=True)
    scope = serializers.ChoiceField(choices=list(SCOPES), default="new")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The admin's list, read per request; null or absent: the project's detector.
        self.fields["detector"] = serializers.ChoiceField(
            choices=model_choices.detector_choices(),
            required=False,
            allow_null=True,
            help_text="The detector for this job, one of the server's list (absent or null: the project's).",
        )


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
        """The file's URL once it is ready, for those who may download it (managers and staff:
        the view says so in the context's "can_download")."""
        if export.status != Export.Status.SUCCEEDED or not export.file:
            return None
        if self.context.get("can_download") is False:
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


class ImportJobSerializer(serializers.ModelSerializer):
    """An import: its status and progress while it runs, its report once it has ended."""

    report = ImportReportSerializer(allow_null=True, read_only=True)
    status_url = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [
            "id", "project", "format", "options", "file_name", "status", "images_done", "images_total",
            "annotation_count", "report", "error", "created_at", "started_at", "finished_at", "status_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_status_url(self, job: ImportJob) -> str:
        return reverse("api-import", kwargs={"import_id": job.pk})


# Prompt lab ------------------------------------------------------------------------------------


class PromptLabStartSerializer(Strict):
    class_id = JSONInteger(min_value=1, help_text="A class of the project (the service checks it).")
    prompts = serializers.ListField(
        child=serializers.CharField(max_length=PROMPT_MAX, allow_blank=False),
        min_length=1,
        max_length=MAX_CANDIDATES,
        help_text=f"Candidate prompts (1 to {MAX_CANDIDATES}); the class's own prompt is measured too.",
    )
    detector = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=200,
        help_text="The candidates' detector, one of the server's list (the service checks it); the "
        "project's by default.",
    )
    sample_size = JSONInteger(min_value=1, max_value=MAX_SAMPLE, required=False, default=DEFAULT_SAMPLE)
    seed = JSONInteger(
        min_value=0, required=False, default=0, help_text="The same seed samples the same images."
    )


class PromptLabCandidateSerializer(serializers.ModelSerializer):
    use_url = serializers.SerializerMethodField()

    class Meta:
        model = PromptLabCandidate
        fields = [
            "id", "position", "prompt", "detector", "is_baseline", "status", "scores",
            "seconds_per_image", "cached_images", "error", "use_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_use_url(self, candidate: PromptLabCandidate) -> str:
        return reverse("api-prompt-lab-candidate-use", kwargs={"candidate_id": candidate.pk})


class PromptLabRunSerializer(serializers.ModelSerializer):
    class_id = serializers.IntegerField(source="label_class_id", read_only=True)
    candidates = PromptLabCandidateSerializer(many=True, read_only=True)

    class Meta:
        model = PromptLabRun
        fields = [
            "id", "project", "class_id", "status", "sample_size", "seed", "image_ids", "params",
            "error", "created_at", "started_at", "finished_at", "seconds", "candidates",
        ]  # fmt: skip
        read_only_fields = fields


class PromptLabUseSerializer(Strict):
    set_threshold = JSONBoolean(
        required=False, default=False, help_text="Also make the candidate's F1-best threshold the class's."
    )
