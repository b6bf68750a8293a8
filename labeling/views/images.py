"""Pages. Views are adapters: parse input, check access, call one service or selector, render."""

from __future__ import annotations

import json
import mimetypes

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.services import segmentation
from labeling.services.images import IngestReport, images_ingest

from ..access import image_for_user, project_for_user
from ..forms import SegmentForm, UploadForm


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
        report = images_ingest(
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


def _report_messages(request: HttpRequest, report: IngestReport) -> None:
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
