"""The Prompt lab tab (managers): the form that starts a run, the runs panel (polled by htmx
while a run is queued or running) with each run's candidates side by side, "Use this prompt"
and Cancel. The work and the rules are labeling.services.prompt_lab's."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from ..access import can_manage, project_for_user, prompt_lab_candidate_for_user, prompt_lab_run_for_user
from ..forms import PromptLabForm
from ..models import JobStatus, Project, PromptLabCandidate, PromptLabRun
from ..selectors.prompt_lab import run_active, run_list
from ..services import prompt_lab
from .shared import project_panel_view, project_tab_context, ticked

RECENT = 10  # runs on the panel (the API pages through all of them)


def _figure(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class CandidateRow:
    candidate: PromptLabCandidate
    cells: dict  # figure name → text ("–" when there is none)
    usable: bool  # measured: "Use this prompt" is offered
    has_best: bool  # an F1-best threshold to use too
    current: bool  # the class's prompt now


def candidate_row(candidate: PromptLabCandidate, class_prompt: str) -> CandidateRow:
    scores = candidate.scores or {}
    cells = {
        name: _figure(scores.get(name))
        for name in ("precision", "recall", "f1", "best_threshold", "best_f1", "ap_box", "ap_mask")
    }
    cells["seconds_per_image"] = _figure(candidate.seconds_per_image, 2)
    return CandidateRow(
        candidate=candidate,
        cells=cells,
        usable=candidate.status == JobStatus.SUCCEEDED,
        has_best=scores.get("best_threshold") is not None,
        current=" ".join(candidate.prompt.split()).lower() == " ".join(class_prompt.split()).lower(),
    )


def runs_context(project: Project) -> dict:
    runs = list(run_list(project=project)[:RECENT])
    return {
        "runs": [
            (
                run,
                [
                    candidate_row(c, run.label_class.prompt or run.label_class.name)
                    for c in run.candidates.all()
                ],
            )
            for run in runs
        ],
        "runs_active": any(run.is_active for run in runs) or run_active(project=project),
    }


def _render_runs(
    request: HttpRequest, project: Project, role: str, *, status: int = 200, **extra
) -> HttpResponse:
    context = {"project": project, "can_manage": can_manage(role), **runs_context(project), **extra}
    return render(request, "labeling/project_prompt_lab.html#runs", context, status=status)


@require_http_methods(["GET", "POST"])
def project_prompt_lab(request: HttpRequest, project_id: int) -> HttpResponse:
    """The Prompt lab tab (managers): GET shows the form and the runs; POST starts a run."""
    project, role = project_for_user(request.user, project_id, manage=True)
    if request.method == "POST":
        return _start(request, project, role)
    context = {
        **project_tab_context(project, role, "prompt-lab"),
        "lab_form": PromptLabForm(project=project),
        **runs_context(project),
    }
    return render(request, "labeling/project_prompt_lab.html", context)


def _start(request: HttpRequest, project: Project, role: str) -> HttpResponse:
    form = PromptLabForm(request.POST, project=project)
    if form.is_valid():
        data = form.cleaned_data
        try:
            run = prompt_lab.prompt_lab_start(
                project=project,
                user=request.user,
                label_class_id=data["label_class"].pk,
                prompts=data["prompts"],
                detector=data["detector"],
                sample_size=data["sample_size"],
                seed=data["seed"],
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            if request.htmx:
                return _render_runs(request, project, role)
            messages.success(request, f"Prompt lab run #{run.pk} started on {len(run.image_ids)} images.")
            return redirect("project-prompt-lab", project_id=project.pk)
    else:
        error = " ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
    if request.htmx:
        return _render_runs(request, project, role, lab_error=error, status=400)
    messages.error(request, f"The prompt lab run was not started: {error}")
    return redirect("project-prompt-lab", project_id=project.pk)


@project_panel_view(page="project-prompt-lab")
def project_prompt_lab_runs(request: HttpRequest, project: Project, role: str) -> HttpResponse:
    """The runs panel (htmx): polled while a run is queued or running; once none is, the panel
    it answers has no poll any more."""
    if not can_manage(role):
        raise PermissionDenied("Only the project's managers can see the prompt lab.")
    return _render_runs(request, project, role)


@require_POST
def prompt_lab_use(request: HttpRequest, candidate_id: int) -> HttpResponse:
    """ "Use this prompt" (managers): the candidate's prompt becomes its class's prompt (and its
    F1-best threshold the class's threshold when the box is ticked)."""
    candidate = prompt_lab_candidate_for_user(request.user, candidate_id, manage=True)
    run: PromptLabRun = candidate.run
    project, role = project_for_user(request.user, run.project_id, manage=True)
    set_threshold = ticked(request.POST.get("set_threshold"))
    try:
        label_class = prompt_lab.prompt_lab_candidate_use(candidate=candidate, set_threshold=set_threshold)
    except ValidationError as exc:
        error = " ".join(exc.messages)
        if request.htmx:
            return _render_runs(request, project, role, lab_error=error, status=400)
        messages.error(request, error)
        return redirect("project-prompt-lab", project_id=project.pk)
    said = f"The class “{label_class.name}” now uses the prompt “{label_class.prompt}”"
    if set_threshold:
        said += f" and the threshold {label_class.box_threshold:.3f}"
    if candidate.detector != project.detector:
        said += f" (the project's detector stays {project.detector}: change it in Settings)"
    if request.htmx:
        return _render_runs(request, project, role, lab_message=said + ".")
    messages.success(request, said + ".")
    return redirect("project-prompt-lab", project_id=project.pk)


@require_POST
def prompt_lab_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    """Cancel a queued or running run (managers)."""
    run = prompt_lab_run_for_user(request.user, run_id, manage=True)
    project, role = project_for_user(request.user, run.project_id, manage=True)
    cancelled = prompt_lab.prompt_lab_run_cancel(run=run)
    if request.htmx:
        return _render_runs(request, project, role)
    if cancelled:
        messages.success(request, f"Prompt lab run #{run.pk} was cancelled.")
    else:
        messages.info(request, f"Prompt lab run #{run.pk} had already ended.")
    return redirect("project-prompt-lab", project_id=project.pk)
