from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.forms import BaseInlineFormSet, inlineformset_factory

from .models import LabelClass, Membership, Project


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


class LabelClassForm(forms.ModelForm):
    class Meta:
        model = LabelClass
        fields = ["name", "prompt", "color", "box_threshold"]
        widgets = {
            "color": forms.TextInput(attrs={"type": "color"}),
            "box_threshold": forms.NumberInput(
                attrs={"step": "0.01", "min": "0", "max": "1", "placeholder": "project"}
            ),
            "prompt": forms.TextInput(attrs={"placeholder": "defaults to the name"}),
        }


class BaseLabelClassFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        seen: set[str] = set()
        kept = 0
        for form in self.forms:
            if not form.has_changed() and not form.instance.pk:
                continue
            if self.can_delete and self._should_delete_form(form):
                in_use = form.instance.pk and form.instance.annotations.exists()
                if in_use:
                    form.add_error(
                        None,
                        f'Class "{form.instance.name}" has annotations and cannot be deleted; '
                        "change their class first.",
                    )
                continue
            name = (form.cleaned_data.get("name") or "").strip().lower()
            if name in seen:
                form.add_error("name", "Two classes have this name.")
            seen.add(name)
            kept += 1
        if kept == 0:
            raise forms.ValidationError("A project needs at least one class.")

    def save(self, commit: bool = True):
        # New classes go after the existing ones.
        instances = super().save(commit=False)
        next_order = max((c.order for c in self.instance.classes.all()), default=-1) + 1
        for obj in self.deleted_objects:
            obj.delete()
        for label_class in instances:
            if label_class.pk is None:
                label_class.order = next_order
                next_order += 1
            label_class.save()
        return instances


def label_class_formset(extra: int):
    return inlineformset_factory(
        Project, LabelClass, form=LabelClassForm, formset=BaseLabelClassFormSet, extra=extra, can_delete=True
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class UploadForm(forms.Form):
    files = forms.FileField(
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
