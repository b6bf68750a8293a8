from __future__ import annotations

import json

from django import forms
from django.contrib.auth import get_user_model
from django.forms import BaseInlineFormSet, inlineformset_factory

from .models import PALETTE, LabelClass, Membership, Project, box_errors
from .services.projects import ClassEdit


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = [
            "name", "description", "box_threshold", "text_threshold", "keep_threshold",
            "prompt_mode", "segment", "detector", "segmenter",
        ]  # fmt: skip
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "box_threshold": forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
            "text_threshold": forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
            "keep_threshold": forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
        }


# A tuple: an inline formset appends its foreign key to its form's Meta.fields list in place.
CLASS_FIELDS = ("name", "prompt", "color", "box_threshold")


class LabelClassForm(forms.ModelForm):
    class Meta:
        model = LabelClass
        fields = list(CLASS_FIELDS)
        widgets = {
            "color": forms.TextInput(attrs={"type": "color"}),
            "box_threshold": forms.NumberInput(
                attrs={"step": "0.01", "min": "0", "max": "1", "placeholder": "project"}
            ),
            "prompt": forms.TextInput(attrs={"placeholder": "defaults to the name"}),
        }


class BaseLabelClassFormSet(BaseInlineFormSet):
    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        if form.instance.pk is None:
            # A new row starts with the palette color of its position (as services.projects.label_class_create
            # does), not the model's one default: classes made in one go must not all look alike.
            form.initial["color"] = PALETTE[i % len(PALETTE)]
        return form

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        seen: set[str] = set()
        kept = 0
        in_use: list[str] = []
        for form in self.forms:
            if not form.has_changed() and not form.instance.pk:
                continue
            if self.can_delete and self._should_delete_form(form):
                if form.instance.pk and form.instance.annotations.exists():
                    # Not form.add_error: a form marked for deletion is left out of the formset's
                    # validity, so the class would be deleted anyway (ProtectedError, a 500).
                    in_use.append(
                        f'Class "{form.initial.get("name", form.instance.name)}" has annotations and '
                        "cannot be deleted; change their class first."
                    )
                continue
            name = (form.cleaned_data.get("name") or "").strip().lower()
            if name in seen:
                form.add_error("name", "Two classes have this name.")
            seen.add(name)
            kept += 1
        if in_use:
            raise forms.ValidationError(in_use)
        if kept == 0:
            raise forms.ValidationError("A project needs at least one class.")

    def class_edits(self) -> tuple[list[ClassEdit], list[int]]:
        """The valid formset as plain data for services.projects.project_save: the new and changed
        rows, and the ids of the rows marked for deletion."""
        edits, deleted = [], []
        for form in self.forms:
            if form.instance.pk and self.can_delete and self._should_delete_form(form):
                deleted.append(form.instance.pk)
            elif form.has_changed():
                values = {name: form.cleaned_data[name] for name in CLASS_FIELDS}
                edits.append(ClassEdit(id=form.instance.pk, fields=values))
        return edits, deleted


def label_class_formset(extra: int):
    return inlineformset_factory(
        Project, LabelClass, form=LabelClassForm, formset=BaseLabelClassFormSet, extra=extra, can_delete=True
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A FileField that takes several files (Django's documented recipe): a plain FileField
    refuses the list the multiple widget gives it ("No file was submitted")."""

    def clean(self, data, initial=None):
        single_file_clean = super().clean
        if isinstance(data, list | tuple):
            return [single_file_clean(item, initial) for item in data]
        return [single_file_clean(data, initial)]


class UploadForm(forms.Form):
    files = MultipleFileField(
        # Empty files are refused one by one by the ingest, not for the whole batch here.
        allow_empty_file=True,
        widget=MultipleFileInput(attrs={"multiple": True, "accept": "image/*,.zip,.tif,.tiff"}),
        help_text="JPEG, PNG, WebP, TIFF, BMP, or zip archives of them.",
    )

    def clean_files(self):
        files = self.files.getlist("files")
        if not files:
            raise forms.ValidationError("Choose at least one file.")
        return files


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices)

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f'No active user named "{username}".')
        return user


class PrelabelForm(forms.Form):
    classes = forms.ModelMultipleChoiceField(
        queryset=LabelClass.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Classes to look for.",
    )
    box_threshold = forms.FloatField(
        min_value=0.0, max_value=1.0, widget=forms.NumberInput(attrs={"step": "0.01"})
    )
    text_threshold = forms.FloatField(
        min_value=0.0, max_value=1.0, widget=forms.NumberInput(attrs={"step": "0.01"})
    )
    scope = forms.ChoiceField(
        choices=[
            ("new", "New images only"),
            ("not_done", "Every image not yet done (replaces open proposals)"),
        ],
        initial="new",
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["classes"].queryset = project.classes.all()
        self.fields["classes"].initial = list(project.classes.values_list("pk", flat=True))
        self.fields["box_threshold"].initial = project.box_threshold
        self.fields["text_threshold"].initial = project.text_threshold


class SegmentForm(forms.Form):
    """Click-to-segment input: positive / negative points and/or a box, in image pixels; an
    annotation to refine (its box and mask are the starting point); the client's token of the
    object being segmented (the previous click's mask is fed back for the next one on the same
    object); `retry` to try an embedding that failed again."""

    points = forms.JSONField(required=False)
    labels = forms.JSONField(required=False)
    box = forms.JSONField(required=False)
    annotation = forms.IntegerField(required=False, min_value=1)
    object = forms.RegexField(
        regex=r"^[A-Za-z0-9_-]{1,64}$",
        required=False,
        error_messages={"invalid": "object must be 1 to 64 letters, digits, - or _."},
    )
    retry = forms.BooleanField(required=False)

    FIELDS = ("points", "labels", "box", "annotation", "object", "retry")

    @classmethod
    def data_from_json(cls, body: dict) -> dict:
        """A JSON object's values as this form's fields read them (points / labels / box as JSON
        text). Raises ValidationError for unknown fields or values of the wrong type."""
        unknown = set(body) - set(cls.FIELDS)
        if unknown:
            raise forms.ValidationError(f"Unknown field(s): {', '.join(sorted(unknown))}.")
        data = {key: json.dumps(body[key]) for key in ("points", "labels", "box") if key in body}
        annotation, token, retry = body.get("annotation"), body.get("object"), body.get("retry")
        if annotation is not None:
            if isinstance(annotation, bool) or not isinstance(annotation, int):
                raise forms.ValidationError("annotation must be the id of an annotation of this image.")
            data["annotation"] = str(annotation)
        if token is not None:
            if not isinstance(token, str):
                raise forms.ValidationError("object must be a string.")
            data["object"] = token
        if retry is not None:
            if not isinstance(retry, bool):
                raise forms.ValidationError("retry must be true or false.")
            data["retry"] = "true" if retry else "false"
        return data

    def __init__(self, *args, width: int, height: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.width, self.height = width, height

    def _inside(self, x, y) -> bool:
        return 0 <= x <= self.width and 0 <= y <= self.height

    def clean_points(self):
        points = self.cleaned_data.get("points") or []
        if not isinstance(points, list) or not all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
            for p in points
        ):
            raise forms.ValidationError("points must be a list of [x, y] pairs of numbers.")
        if len(points) > 64:
            raise forms.ValidationError("At most 64 points.")
        for x, y in points:
            if not self._inside(x, y):
                raise forms.ValidationError(
                    f"Point ({x}, {y}) is outside the {self.width} × {self.height} image."
                )
        return [(float(x), float(y)) for x, y in points]

    def clean_labels(self):
        labels = self.cleaned_data.get("labels") or []
        if not isinstance(labels, list) or not all(
            label in (0, 1) and not isinstance(label, bool) for label in labels
        ):
            raise forms.ValidationError("labels must be a list of 1 (positive) and 0 (negative).")
        return labels

    def clean_box(self):
        box = self.cleaned_data.get("box")
        if box in (None, ""):
            return None
        if not (
            isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
        ):
            raise forms.ValidationError("box must be [x, y, width, height] in pixels.")
        errors = box_errors(tuple(float(v) for v in box), width=self.width, height=self.height)
        if errors:
            raise forms.ValidationError(errors)
        return tuple(float(v) for v in box)

    def clean(self):
        data = super().clean()
        points, labels = data.get("points"), data.get("labels")
        if points is not None and labels is not None:
            if len(points) != len(labels):
                raise forms.ValidationError("Give one label per point.")
            if not points and data.get("box") is None and not data.get("annotation") and not self.errors:
                raise forms.ValidationError("Give at least one point or a box.")
        return data
