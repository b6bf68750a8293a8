"""Pages. Views are adapters: parse input, check access, call one service or selector, render."""

from __future__ import annotations

import json
import mimetypes

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import prelabel, segmentation, selectors, services
from .access import can_create_projects, can_manage, image_for_user, job_for_user, project_for_user
from .forms import MemberForm, PrelabelForm, ProjectForm, SegmentForm, UploadForm, label_class_formset
from .models import Image, Membership, Project

IMAGES_PER_PAGE = 48


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "labeling/project_list.html",
        {
            "projects": selectors.project_list(user=request.user),
            "can_create": can_create_projects(request.user),
        },
    )


def _project_form_page(request: HttpRequest, project: Project | None) -> HttpResponse:
    creating = project is None
    instance = project or Project()
    formset_class = label_class_formset(extra=4 if creating else 1)
    if request.method == "POST":
        form = ProjectForm(request.POST, instance=instance)
        formset = formset_class(request.POST, instance=instance, prefix="classes")
        if form.is_valid() and formset.is_valid():
            project = services.project_save(form=form, classes_formset=formset, user=request.user)
            messages.success(request, f'Project "{project.name}" {"created" if creating else "saved"}.')
            return redirect("project-detail", project_id=project.pk)
    else:
        form = ProjectForm(instance=instance)
        formset = formset_class(instance=instance, prefix="classes")
    return render(
        request,
        "labeling/project_form.html",
        {"form": form, "formset": formset, "project": project, "creating": creating},
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest) -> HttpResponse:
    if not can_create_projects(request.user):
        raise PermissionDenied("You may not create projects; ask an administrator.")
    return _project_form_page(request, None)


@require_http_methods(["GET", "POST"])
def project_edit(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = project_for_user(request.user, project_id, manage=True)
    return _project_form_page(request, project)


def _grid_context(request: HttpRequest, project: Project) -> dict:
    status = request.GET.get("status", "")
    if status not in Image.Status.values:
        status = ""
    paginator = Paginator(selectors.image_list(project=project, status=status or None), IMAGES_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    counts = selectors.image_status_counts(project=project)
    statuses = [(value, label, counts[value]) for value, label in Image.Status.choices]
    return {"page": page, "status": status, "statuses": statuses, "counts": counts}


@require_GET
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = project_for_user(request.user, project_id)
    context = {
        "project": project,
        "role": role,
        "can_manage": can_manage(role),
        "classes": list(project.classes.all()),
        "upload_form": UploadForm(),
        "prelabel_form": PrelabelForm(project=project),
        **_jobs_context(project),
        **_grid_context(request, project),
    }
    return render(request, "labeling/project_detail.html", context)


@require_GET
def project_images(request: HttpRequest, project_id: int) -> HttpResponse:
    """The image grid alone (htmx: filter and page without reloading the page)."""
    project, _ = project_for_user(request.user, project_id)
    if not request.htmx:  # plain link: the whole page, filtered the same way
        return redirect(f"{project.get_absolute_url()}?{request.GET.urlencode()}")
    return render(
        request, "labeling/project_detail.html#grid", {"project": project, **_grid_context(request, project)}
    )


def upload_too_large(request: HttpRequest) -> HttpResponse | None:
    """413 with the reason when the request declares more than LABELGPT_MAX_UPLOAD_BYTES."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared <= settings.LABELGPT_MAX_UPLOAD_BYTES:
        return None
    return HttpResponse(
        f"The upload is {declared / 1e6:.0f} MB; the limit is "
        f"{settings.LABELGPT_MAX_UPLOAD_BYTES / 1e6:.0f} MB per upload. Send fewer files at once.",
        status=413,
        content_type="text/plain",
    )


@require_POST
def project_upload(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = project_for_user(request.user, project_id, manage=True)
    too_large = upload_too_large(request)
    if too_large:
        return too_large
    form = UploadForm(request.POST, request.FILES)
    report = None
    if form.is_valid():
        report = services.images_ingest(
            project=project, files=[(f.name, f) for f in form.cleaned_data["files"]], user=request.user
        )
    if request.htmx:
        response = render(
            request,
            "labeling/project_detail.html#upload-report",
            {"project": project, "report": report, "upload_form": form},
            status=200 if report else 400,
        )
        if report and report.created:
            response["HX-Trigger"] = "images-changed"
        return response
    if report is None:
        messages.error(request, "; ".join(form.errors.get("files", ["Choose at least one file."])))
    else:
        _report_messages(request, report)
    return redirect("project-detail", project_id=project.pk)


def _report_messages(request: HttpRequest, report: services.IngestReport) -> None:
    if report.created:
        messages.success(request, f"{len(report.created)} image(s) added.")
    for name, existing in report.duplicates:
        messages.warning(request, f"{name}: duplicate of {existing}, not stored again.")
    for name, reason in report.errors:
        messages.error(request, f"{name}: {reason}")
    if report.skipped:
        messages.info(
            request, f"{len(report.skipped)} file(s) skipped: {', '.join(n for n, _ in report.skipped)}"
        )


@require_http_methods(["GET", "POST"])
def project_members(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = project_for_user(request.user, project_id, manage=True)
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        if "remove" in request.POST:
            try:
                services.membership_remove(project=project, membership_id=request.POST.get("remove"))
            except ValueError as exc:
                messages.error(request, str(exc))
            return redirect("project-members", project_id=project.pk)
        if form.is_valid():
            try:
                services.membership_set(
                    project=project, user=form.cleaned_data["username"], role=form.cleaned_data["role"]
                )
            except ValueError as exc:
                form.add_error("role", str(exc))
            else:
                messages.success(
                    request, f"{form.cleaned_data['username']} is now a {form.cleaned_data['role']}."
                )
                return redirect("project-members", project_id=project.pk)
    members = project.memberships.select_related("user").order_by("role", "user__username")
    return render(
        request,
        "labeling/project_members.html",
        {"project": project, "members": members, "form": form, "roles": Membership.Role},
        status=400 if request.method == "POST" else 200,
    )


def _serve(field_file, *, download_name: str) -> FileResponse:
    if not field_file:
        raise Http404("No file.")
    try:
        handle = field_file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The file is missing from storage.") from exc
    content_type = mimetypes.guess_type(field_file.name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=content_type, filename=download_name)
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_GET
def image_file(request: HttpRequest, image_id: int) -> FileResponse:
    image, _ = image_for_user(request.user, image_id)
    return _serve(image.file, download_name=image.original_name.rsplit("/", 1)[-1])


@require_GET
def image_thumbnail(request: HttpRequest, image_id: int) -> FileResponse:
    image, _ = image_for_user(request.user, image_id)
    return _serve(image.thumbnail, download_name=f"thumb-{image.pk}.jpg")


# Pre-labeling ------------------------------------------------------------------------------------


def _jobs_context(project: Project) -> dict:
    active, jobs = selectors.project_jobs(project=project)
    return {"active_job": active, "jobs": jobs}


def _render_jobs(request: HttpRequest, project: Project, role: str, **extra) -> HttpResponse:
    context = {"project": project, "can_manage": can_manage(role), **_jobs_context(project), **extra}
    return render(request, "labeling/project_detail.html#jobs", context, status=extra.pop("status", 200))


@require_POST
def project_prelabel(request: HttpRequest, project_id: int) -> HttpResponse:
    """Start a pre-label job (managers)."""
    project, role = project_for_user(request.user, project_id, manage=True)
    form = PrelabelForm(request.POST, project=project)
    error = ""
    if form.is_valid():
        options = prelabel.JobOptions(
            class_ids=[c.pk for c in form.cleaned_data["classes"]],
            box_threshold=form.cleaned_data["box_threshold"],
            text_threshold=form.cleaned_data["text_threshold"],
            scope=form.cleaned_data["scope"],
        )
        try:
            job = prelabel.prelabel_job_start(project=project, user=request.user, options=options)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            if request.htmx:
                return _render_jobs(request, project, role, prelabel_form=PrelabelForm(project=project))
            messages.success(request, f"Pre-labeling {job.total} image(s) started.")
            return redirect("project-detail", project_id=project.pk)
    else:
        error = " ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
    if request.htmx:
        return _render_jobs(request, project, role, prelabel_form=form, prelabel_error=error, status=400)
    messages.error(request, f"Pre-labeling not started: {error}")
    return redirect("project-detail", project_id=project.pk)


@require_GET
def project_jobs(request: HttpRequest, project_id: int) -> HttpResponse:
    """The jobs panel: live progress of the active job (polled by htmx) and the recent ones."""
    project, role = project_for_user(request.user, project_id)
    if not request.htmx:
        return redirect("project-detail", project_id=project.pk)
    response = _render_jobs(request, project, role, prelabel_form=PrelabelForm(project=project))
    response["HX-Trigger"] = "images-changed"  # images turn "pre-labeled" as the job goes
    return response


@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job, role = job_for_user(request.user, job_id)
    failures = job.items.filter(status="failed").select_related("image").order_by("id")[:500]
    return render(
        request,
        "labeling/job_detail.html",
        {
            "job": job,
            "progress": selectors.job_progress(job),
            "failures": failures,
            "can_manage": can_manage(role),
        },
    )


@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job, role = job_for_user(request.user, job_id, manage=True)
    cancelled = prelabel.prelabel_job_cancel(job=job)
    if request.htmx:
        return _render_jobs(request, job.project, role, prelabel_form=PrelabelForm(project=job.project))
    if cancelled:
        messages.success(request, f"Job {job.pk} cancelled; it stops before its next image.")
    else:
        messages.info(request, f"Job {job.pk} had already ended.")
    return redirect("project-detail", project_id=job.project_id)


# Click-to-segment ----------------------------------------------------------------------------------


def _segment_input(request: HttpRequest) -> dict:
    """The request's fields as SegmentForm reads them (JSON body or form fields)."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError(f"The body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ValidationError("The body must be a JSON object with points, labels and/or box.")
        return SegmentForm.data_from_json(body)
    return request.POST


@require_POST
def image_segment(request: HttpRequest, image_id: int) -> HttpResponse:
    """Points / labels / box (and an annotation to refine) → a mask, decoded on the image's cached
    SAM embedding (milliseconds). Without a cached embedding: 202 "preparing", and the embedding is
    queued on the interactive queue; 503 / 422 with the reason when it cannot be made."""
    image, _ = image_for_user(request.user, image_id)
    try:
        form = SegmentForm(_segment_input(request), width=image.width, height=image.height)
        if not form.is_valid():
            reasons = [
                f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
                for field, errors in form.errors.items()
            ]
            return JsonResponse({"error": " ".join(reasons), "fields": form.errors}, status=400)
        refine = segmentation.refine_target(
            user=request.user, image=image, annotation_id=form.cleaned_data["annotation"]
        )
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages)}, status=400)
    status, body = segmentation.segment_answer(
        image=image,
        user=request.user,
        points=form.cleaned_data["points"],
        labels=form.cleaned_data["labels"],
        box=form.cleaned_data["box"],
        refine=refine,
        object_token=form.cleaned_data["object"],
        retry=form.cleaned_data["retry"],
    )
    if status == 200 and request.htmx:
        png = segmentation.mask_png_data_uri(body["mask"]) if body["area"] and not body["polygons"] else ""
        return render(
            request, "labeling/_segment_result.html", {"image": image, "result": body, "mask_png": png}
        )
    response = JsonResponse(body, status=status)
    if status == 202:
        response["Retry-After"] = str(segmentation.SEGMENT_RETRY_AFTER)
    return response
