from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import BaseUserCreationForm
from django.forms import BaseInlineFormSet, inlineformset_factory

from . import model_choices
from .models import PALETTE, Image, LabelClass, Membership, Project
from .selectors.images import DEFAULT_SORT, SEARCH_MAX, SORTS, Cursor, grid_sort
from .selectors.navigation import QUEUE_SKIPPED
from .services.projects import ClassEdit
from .services.prompt_lab import DEFAULT_SAMPLE, MAX_CANDIDATES, MAX_SAMPLE, PROMPT_MAX


class ProjectForm(forms.ModelForm):
    # The admin's lists (read on every form: settings may change); Project.clean() checks again.
    detector = forms.ChoiceField(choices=model_choices.detector_choices)
    segmenter = forms.ChoiceField(choices=model_choices.segmenter_choices)
    exemplar_detector = forms.ChoiceField(
        choices=model_choices.exemplar_detector_choices,
        required=False,
        label="Find more like this",
        help_text="The SAM 3 model that finds more objects like a selected one (L on the review page) "
        "when the detector is not SAM 3. A SAM 3 project uses its own detector.",
    )

    class Meta:
        model = Project
        fields = [
            "name", "description", "box_threshold", "text_threshold", "keep_threshold",
            "prompt_mode", "segment", "detector", "segmenter", "exemplar_detector",
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


CURSOR_MAX = 2**63 - 1
COUNT_MAX = 2**31 - 1


class GridPageForm(forms.Form):
    """The project page's image grid: the status filter, the sort, the search and the page, by
    keyset. `?sort=` one of selectors.images.SORTS (`-` first: descending); `?q=` a prefix of the
    original name, as typed (with a search the page is by name: selectors.images.grid_sort);
    `?after=<cursor>`: the images after it; `?before=<cursor>`: the page before it; `?last=1`: the
    last page; none of them: the first page. A cursor is the boundary image's id, then, unless
    sorted by date added, ":" and its value of the sort (`57:cat.jpg`, `57:3`, `57:done`). A bad
    page value (not a cursor of the sort, two of them at once) is dropped, so a mangled URL shows
    the first page; a bad sort or search is dropped too and `problems` says why (shown above the
    grid), never an error page."""

    status = forms.ChoiceField(choices=Image.Status.choices, required=False)
    sort = forms.ChoiceField(choices=[(s, s) for s in SORTS], required=False)
    q = forms.CharField(max_length=SEARCH_MAX, required=False, strip=False)
    after = forms.CharField(max_length=600, required=False, strip=False)
    before = forms.CharField(max_length=600, required=False, strip=False)
    last = forms.ChoiceField(choices=[("1", "the last page")], required=False)

    def page_query(self) -> dict:
        """The valid part of the query: status ("" for all), sort (the one the page uses), search
        ("" for none) and at most one of after / before / last, ready for
        `selectors.images.image_page`."""
        self.is_valid()
        data = self.cleaned_data
        search = data.get("q") or ""
        sort = grid_sort(data.get("sort") or DEFAULT_SORT, search)
        cursor: dict = {}
        for name in ("after", "before"):
            if data.get(name):
                parsed = parse_cursor(data[name], sort)
                if parsed is not None:
                    cursor[name] = parsed
                else:
                    cursor["bad"] = True
        if data.get("last") == "1":
            cursor["last"] = True
        query = {"status": data.get("status") or "", "sort": sort, "search": search}
        return {**query, **(cursor if len(cursor) == 1 and "bad" not in cursor else {})}

    @property
    def problems(self) -> list[str]:
        """Why a sort or a search of the URL was left out (the page and status ones are dropped
        silently: a stale link, not something typed)."""
        return [
            f"{'Sort' if name == 'sort' else 'Search'}: {error}"
            for name in ("sort", "q")
            for error in self.errors.get(name, [])
        ]


def parse_cursor(text: str, sort: str) -> Cursor | None:
    """A page cursor of the sort (`<id>` or `<id>:<value>`), or None when it is not one."""
    key = sort.lstrip("-")
    head, colon, value = text.partition(":")
    if not head.isascii() or not head.isdigit() or not 0 <= int(head) <= CURSOR_MAX:
        return None
    pk = int(head)
    if key == "added":
        return None if colon else Cursor(pk)
    if not colon:
        return None
    if key == "annotations":
        if not value.isascii() or not value.isdigit() or int(value) > COUNT_MAX:
            return None
        return Cursor(pk, int(value))
    if key == "status":
        return Cursor(pk, value) if value in Image.Status.values else None
    if "\x00" in value or len(value) > SEARCH_MAX:  # a name: any text a name may hold
        return None
    return Cursor(pk, value)


IMAGES_DELETE_MAX = 500


class ImagesDeleteForm(forms.Form):
    """The grid's Delete: the chosen images (`image`, repeated: their ids), and `confirm` once the
    confirmation (how many images and annotations) was seen."""

    confirm = forms.BooleanField(required=False)

    def clean(self):
        data = super().clean()
        raw = self.data.getlist("image") if hasattr(self.data, "getlist") else []
        if not raw:
            raise forms.ValidationError("Choose the images to delete first.")
        if len(raw) > IMAGES_DELETE_MAX:
            raise forms.ValidationError(f"At most {IMAGES_DELETE_MAX} images at once.")
        if not all(v.isascii() and v.isdigit() and 0 < int(v) <= CURSOR_MAX for v in raw):
            raise forms.ValidationError("An image id is not a number.")
        data["image_ids"] = sorted({int(v) for v in raw})
        return data


class MemberForm(forms.Form):
    """Who to add: a user name or an e-mail address (services.invitations.member_add decides)."""

    username = forms.CharField(max_length=254, label="User name or e-mail")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.ANNOTATOR)


class InvitationSignupForm(BaseUserCreationForm):
    """The invitee's new account: a user name (unique, any case) and a password twice, checked by
    Django's password validators. The view hands the clean values to invitation_signup."""

    class Meta(BaseUserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)

    def clean_username(self):
        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("This user name is taken: choose another one.")
        return username


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
    detector = forms.ChoiceField(
        required=False, help_text="The detector for this job (blank: the project's)."
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        # The admin's list, read per form (settings may change); the service checks it again.
        self.fields["detector"].choices = [
            ("", f"Project's ({project.detector})"),
            *model_choices.detector_choices(),
        ]
        self.fields["classes"].queryset = project.classes.all()
        self.fields["classes"].initial = list(project.classes.values_list("pk", flat=True))
        self.fields["box_threshold"].initial = project.box_threshold
        self.fields["text_threshold"].initial = project.text_threshold


class JobPageForm(forms.Form):
    """The pre-label tab's job history, newest first, by keyset: `?after=<job id>`: the jobs older
    than it; `?before=<job id>`: the page of newer ones; neither: the newest. A bad value (or both)
    is dropped: a mangled URL shows the newest jobs, never an error."""

    after = forms.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    before = forms.IntegerField(min_value=1, max_value=2**63 - 1, required=False)

    def page_query(self) -> dict:
        """At most one of after / before, ready for `selectors.prelabel.job_page`."""
        self.is_valid()
        cursor = {
            n: self.cleaned_data[n] for n in ("after", "before") if self.cleaned_data.get(n) is not None
        }
        return cursor if len(cursor) == 1 else {}


class ProjectDeleteForm(forms.Form):
    """Deleting a project: its name typed again, exactly (surrounding spaces aside)."""

    confirm_name = forms.CharField(max_length=200, label="Type the project's name to confirm", strip=True)

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_confirm_name(self) -> str:
        typed = self.cleaned_data["confirm_name"]
        if typed != self.project.name.strip():
            raise forms.ValidationError("The name does not match the project's name: nothing was deleted.")
        return typed


class ClassThresholdForm(forms.Form):
    """A class's own review threshold (the dashboard's "Apply" of a suggested threshold)."""

    class_id = forms.IntegerField(min_value=1, max_value=2**63 - 1)
    box_threshold = forms.FloatField(min_value=0.0, max_value=1.0)


class ReviewQueueForm(forms.Form):
    """The review queue's query string: ?status=skipped (revisit the skipped images) and ?after=
    (the id of the skipped image just seen: the queue goes on after it)."""

    status = forms.ChoiceField(choices=[("", "to review"), (QUEUE_SKIPPED, "skipped")], required=False)
    after = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class ReviewPageForm(forms.Form):
    """The review page's query string: ?queue=skipped when it was opened from the skipped queue
    (submit and skip then go on to the next skipped image)."""

    queue = forms.ChoiceField(choices=[("", "to review"), (QUEUE_SKIPPED, "skipped")], required=False)


class PromptLabForm(forms.Form):
    """The prompt lab's form: a class, candidate prompts one per line, their detector (the
    admin's list; the project's by default), the sample's size and seed. The service checks the
    rest (the class's project, each prompt's length and words, done images to sample)."""

    label_class = forms.ModelChoiceField(queryset=LabelClass.objects.none(), label="Class", empty_label=None)
    prompts = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "one candidate prompt per line"}),
        max_length=(PROMPT_MAX + 2) * MAX_CANDIDATES * 2,
        label="Candidate prompts",
        help_text=f"One per line, up to {MAX_CANDIDATES}; the class's own prompt is measured too.",
    )
    detector = forms.ChoiceField(choices=model_choices.detector_choices)
    sample_size = forms.IntegerField(
        min_value=1, max_value=MAX_SAMPLE, initial=DEFAULT_SAMPLE, label="Images"
    )
    seed = forms.IntegerField(min_value=0, max_value=2**63 - 1, initial=0)

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label_class"].queryset = project.classes.all()
        self.fields["detector"].initial = project.detector

    def clean_prompts(self) -> list[str]:
        # Required and stripped: at least one line has text.
        lines = [line.strip() for line in self.cleaned_data["prompts"].splitlines()]
        lines = [line for line in lines if line]
        if len(lines) > MAX_CANDIDATES:
            raise forms.ValidationError(f"Try {MAX_CANDIDATES} prompts at most per run (got {len(lines)}).")
        return lines
