"""API views: adapters like the pages' views. Parse input (strict serializers), check access with
the helpers of labeling.access / labeling.review / labeling.exports, call one service, answer.

Errors: the services' ReviewError (400 / 409 / 412 / 428) and Django ValidationError (400) become
JSON answers here; 404 / 403 / 401 come from the access helpers and DRF.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authtoken.models import Token
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from labeling.selectors.exports import export_list
from labeling.services import exports, imports, prelabel, review, segmentation
from labeling.services.images import image_delete, images_ingest
from labeling.services.projects import (
    label_class_create,
    membership_remove,
    membership_set,
    project_create,
    project_update,
)
from labeling.services.review import UNSET, Invalid, ReviewError
from labeling.views.exports import export_file_response

from ..access import (
    annotation_for_user,
    can_create_projects,
    export_for_user,
    image_for_user,
    job_for_user,
    project_for_user,
)
from ..formats.base import ExportOptions, FormatError
from ..forms import SegmentForm
from ..models import Annotation, Image, LabelClass, PrelabelJob, Project
from . import serializers as s
from .permissions import projects_with_role, require_manager


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, plus the services' errors as JSON."""
    if isinstance(exc, ReviewError):
        return Response(exc.as_dict(), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        body: dict[str, Any] = {"error": " ".join(exc.messages)}
        if hasattr(exc, "error_dict"):
            body["fields"] = exc.message_dict
        return Response(body, status=400)
    if isinstance(exc, FormatError):
        return Response({"error": str(exc)}, status=400)
    if isinstance(exc, IntegrityError):
        return Response({"error": "This conflicts with data already saved."}, status=409)
    return drf_exception_handler(exc, context)


def _count(queryset: QuerySet, link: str, **filters) -> Coalesce:
    """A correlated COUNT(*) subquery (no join fan-out in list queries)."""
    counted = (
        queryset.filter(**{link: OuterRef("pk")}, **filters)
        .order_by()
        .values(link)
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _input(serializer_class, request: Request, data: Any = None, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=request.data if data is None else data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _annotation_response(annotation: dict, *, code: int = 200) -> Response:
    response = Response(annotation, status=code)
    response["ETag"] = f'"{annotation["version"]}"'
    return response


IF_MATCH = OpenApiParameter(
    "If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, description='The version edited, e.g. "3".'
)


# Auth ------------------------------------------------------------------------------------------


class TokenView(GenericAPIView):
    """POST username / password → a token (throttled). DELETE → revoke your own token."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"
    serializer_class = s.TokenRequestSerializer

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(auth=[], responses={200: s.TokenSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        Token.objects.filter(user=request.user).delete()
        return Response(status=204)


# Projects and classes --------------------------------------------------------------------------


class ProjectList(GenericAPIView):
    serializer_class = s.ProjectSerializer

    def get_queryset(self) -> QuerySet[Project]:
        return projects_with_role(self.request.user).annotate(
            image_count=_count(Image.objects, "project"),
            class_count=_count(LabelClass.objects, "project"),
        )

    @extend_schema(responses=s.ProjectSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.ProjectSerializer(page, many=True).data)

    @extend_schema(request=s.ProjectCreateSerializer, responses={201: s.ProjectSerializer})
    def post(self, request: Request) -> Response:
        if not can_create_projects(request.user):
            raise PermissionDenied("You may not create projects.")
        data = dict(_input(s.ProjectCreateSerializer, request))
        classes = [dict(c) for c in data.pop("classes", [])]
        project = project_create(user=request.user, classes=classes, **data)
        return Response(s.ProjectSerializer(self.get_queryset().get(pk=project.pk)).data, status=201)


class ProjectDetail(ProjectList):
    http_method_names = ["get", "patch", "head", "options"]

    @extend_schema(responses=s.ProjectSerializer)
    def get(self, request: Request, project_id: int) -> Response:
        project_for_user(request.user, project_id)
        return Response(s.ProjectSerializer(self.get_queryset().get(pk=project_id)).data)

    @extend_schema(request=s.ProjectSerializer, responses=s.ProjectSerializer)
    def patch(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.ProjectSerializer, request, partial=True)
        project_update(project=project, **data)
        return Response(s.ProjectSerializer(self.get_queryset().get(pk=project_id)).data)


class ProjectClasses(GenericAPIView):
    serializer_class = s.LabelClassSerializer

    @extend_schema(responses=s.LabelClassSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id)
        page = self.paginate_queryset(project.classes.order_by("order", "id"))
        return self.get_paginated_response(s.LabelClassSerializer(page, many=True).data)

    @extend_schema(responses={201: s.LabelClassSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.LabelClassSerializer, request)
        label_class = label_class_create(project=project, **data)
        return Response(s.LabelClassSerializer(label_class).data, status=201)


class ProjectMembers(GenericAPIView):
    """The project's members and their roles (managers)."""

    serializer_class = s.MembershipSerializer

    @extend_schema(responses=s.MembershipSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        members = project.memberships.select_related("user").order_by("role", "user__username", "id")
        page = self.paginate_queryset(members)
        return self.get_paginated_response(s.MembershipSerializer(page, many=True).data)

    @extend_schema(request=s.MembershipInputSerializer, responses={200: s.MembershipSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        """Add a user to the project, or change their role."""
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.MembershipInputSerializer, request)
        user = get_user_model().objects.filter(username=data["username"], is_active=True).first()
        if user is None:
            raise Invalid(f"No active user named {data['username']!r:.150}.")
        try:
            membership = membership_set(project=project, user=user, role=data["role"])
        except ValueError as exc:
            return Response({"error": str(exc)}, status=409)
        return Response(s.MembershipSerializer(membership).data)


class ProjectMember(GenericAPIView):
    serializer_class = s.MembershipSerializer

    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_id: int, membership_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        if not project.memberships.filter(pk=membership_id).exists():
            raise Http404("No such member.")
        try:
            membership_remove(project=project, membership_id=membership_id)
        except ValueError as exc:
            return Response({"error": str(exc)}, status=409)
        return Response(status=204)


# Images ----------------------------------------------------------------------------------------


def _images(project_id: int) -> QuerySet[Image]:
    return Image.objects.filter(project_id=project_id).annotate(
        annotation_count=_count(Annotation.objects, "image"),
        proposal_count=_count(Annotation.objects, "image", state=Annotation.State.PROPOSED),
    )


class ProjectImages(GenericAPIView):
    serializer_class = s.ImageSerializer
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        parameters=[s.ImageFilterSerializer],
        responses=s.ImageSerializer(many=True),
    )
    def get(self, request: Request, project_id: int) -> Response:
        """Images of the project; filters: ?status=, ?class_id= (has an annotation of the class),
        ?has_proposals=true|false."""
        project, _ = project_for_user(request.user, project_id)
        filters = _input(s.ImageFilterSerializer, request, data=request.query_params)
        images = _images(project.pk).order_by("id")
        if "status" in filters:
            images = images.filter(status=filters["status"])
        if "class_id" in filters:
            images = images.filter(
                Exists(Annotation.objects.filter(image=OuterRef("pk"), label_class_id=filters["class_id"]))
            )
        if filters.get("has_proposals") is not None:
            proposed = Exists(
                Annotation.objects.filter(image=OuterRef("pk"), state=Annotation.State.PROPOSED)
            )
            images = images.filter(proposed if filters["has_proposals"] else ~proposed)
        page = self.paginate_queryset(images)
        return self.get_paginated_response(s.ImageSerializer(page, many=True).data)

    @extend_schema(request=s.UploadSerializer, responses={201: s.IngestReportSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        """Upload image files and / or zip archives of images (multipart, field "files")."""
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.UploadSerializer, request)
        report = images_ingest(project=project, files=[(f.name, f) for f in data["files"]], user=request.user)
        return Response(report.as_dict(), status=201 if report.created else 200)


class ImageDetail(GenericAPIView):
    serializer_class = s.ImageSerializer

    def get(self, request: Request, image_id: int) -> Response:
        image_for_user(request.user, image_id)
        return Response(s.ImageSerializer(_images_by_id(image_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, image_id: int) -> Response:
        image, role = image_for_user(request.user, image_id)
        require_manager(role)
        image_delete(image=image)
        return Response(status=204)


def _images_by_id(image_id: int) -> Image:
    return (
        Image.objects.filter(pk=image_id)
        .annotate(
            annotation_count=_count(Annotation.objects, "image"),
            proposal_count=_count(Annotation.objects, "image", state=Annotation.State.PROPOSED),
        )
        .get()
    )


class ImageClose(GenericAPIView):
    """Submit (done) or skip the image: its status, recorded as the caller's review."""

    serializer_class = s.ImageCloseSerializer
    close = staticmethod(review.image_submit)

    @extend_schema(responses=s.ImageCloseResultSerializer)
    def post(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        data = _input(s.ImageCloseSerializer, request)
        self.close(image=image, user=request.user, version=data.get("version"))
        image.refresh_from_db(fields=["status", "version"])
        return Response({"id": image.pk, "status": image.status, "version": image.version})


class ImageSubmit(ImageClose):
    close = staticmethod(review.image_submit)


class ImageSkip(ImageClose):
    close = staticmethod(review.image_skip)


# Annotations -----------------------------------------------------------------------------------


class ImageAnnotations(GenericAPIView):
    serializer_class = s.AnnotationSerializer

    @extend_schema(responses=s.AnnotationSerializer(many=True))
    def get(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        rows = Annotation.objects.filter(image=image).order_by("id").values(*review.ANNOTATION_FIELDS)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([review.annotation_json(row) for row in page])

    @extend_schema(request=s.AnnotationCreateSerializer, responses={201: s.AnnotationSerializer})
    def post(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        data = _input(s.AnnotationCreateSerializer, request)
        annotation = review.annotation_create(image=image, user=request.user, **data)
        return _annotation_response(annotation, code=201)


class AnnotationDetail(GenericAPIView):
    serializer_class = s.AnnotationSerializer

    def get(self, request: Request, annotation_id: int) -> Response:
        annotation, _ = annotation_for_user(request.user, annotation_id)
        return _annotation_response(review.annotation_current(annotation_id=annotation.pk))

    @extend_schema(
        request=s.AnnotationUpdateSerializer,
        parameters=[IF_MATCH],
        responses={200: s.AnnotationSerializer, 412: OpenApiResponse(description="Stale version")},
    )
    def patch(self, request: Request, annotation_id: int) -> Response:
        annotation, _ = annotation_for_user(request.user, annotation_id)
        data = _input(s.AnnotationUpdateSerializer, request)
        version = review.requested_version(request.headers, data)
        changes = {name: data.get(name, UNSET) for name in ("state", "class_id", "box", "mask", "polygons")}
        saved = review.annotation_update(annotation=annotation, user=request.user, version=version, **changes)
        return _annotation_response(saved)

    @extend_schema(request=s.VersionSerializer, parameters=[IF_MATCH], responses={204: None})
    def delete(self, request: Request, annotation_id: int) -> Response:
        annotation, _ = annotation_for_user(request.user, annotation_id)
        data = _input(s.VersionSerializer, request)
        review.annotation_delete(
            annotation=annotation, user=request.user, version=review.requested_version(request.headers, data)
        )
        return Response(status=204)


class AnnotationTriage(GenericAPIView):
    serializer_class = s.VersionSerializer
    state = Annotation.State.ACCEPTED

    @extend_schema(parameters=[IF_MATCH], responses=s.AnnotationSerializer)
    def post(self, request: Request, annotation_id: int) -> Response:
        annotation, _ = annotation_for_user(request.user, annotation_id)
        data = _input(s.VersionSerializer, request)
        saved = review.annotation_update(
            annotation=annotation,
            user=request.user,
            version=review.requested_version(request.headers, data),
            state=self.state,
        )
        return _annotation_response(saved)


class AnnotationAccept(AnnotationTriage):
    state = Annotation.State.ACCEPTED


class AnnotationReject(AnnotationTriage):
    state = Annotation.State.REJECTED


class AcceptAbove(GenericAPIView):
    """Accept every proposal of the image scoring at least min_score (at their current versions)."""

    serializer_class = s.AcceptAboveSerializer

    @extend_schema(responses=s.BulkResultSerializer)
    def post(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        data = _input(s.AcceptAboveSerializer, request)
        proposals = (
            Annotation.objects.filter(
                image=image, state=Annotation.State.PROPOSED, score__gte=data["min_score"]
            )
            .order_by("id")
            .values_list("pk", "version")[: review.MAX_BULK_UPDATES]
        )
        updates = [{"id": pk, "version": v, "state": Annotation.State.ACCEPTED} for pk, v in proposals]
        return Response(review.annotations_set_states(image=image, user=request.user, updates=updates))


class ImageSegment(GenericAPIView):
    """Points / labels / box (and an annotation to refine) → a mask on the image's cached SAM
    embedding; 202 while it is prepared; 503 / 422 with the reason when it cannot be made."""

    serializer_class = s.SegmentSerializer

    @extend_schema(
        responses={
            200: OpenApiTypes.OBJECT,
            202: OpenApiTypes.OBJECT,
            422: OpenApiResponse(description="The image cannot be read to compute its embedding."),
            503: OpenApiResponse(description="The segmenter cannot load, or the embedding failed."),
        }
    )
    def post(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        data = _input(s.SegmentSerializer, request)
        form = SegmentForm(SegmentForm.data_from_json(data), width=image.width, height=image.height)
        if not form.is_valid():
            return Response({"error": "Invalid input.", "fields": form.errors}, status=400)
        refine = segmentation.refine_target(
            user=request.user, image=image, annotation_id=form.cleaned_data["annotation"]
        )
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
        response = Response(body, status=status)
        if status == 202:
            response["Retry-After"] = str(segmentation.SEGMENT_RETRY_AFTER)
        return response


# Jobs ------------------------------------------------------------------------------------------


class ProjectJobs(GenericAPIView):
    serializer_class = s.JobSerializer

    @extend_schema(responses=s.JobSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id)
        page = self.paginate_queryset(
            PrelabelJob.objects.filter(project=project).order_by("-created_at", "-id")
        )
        return self.get_paginated_response(s.JobSerializer(page, many=True).data)

    @extend_schema(request=s.JobStartSerializer, responses={201: s.JobSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.JobStartSerializer, request)
        options = prelabel.JobOptions(
            class_ids=data.get("class_ids"),
            box_threshold=data.get("box_threshold"),
            text_threshold=data.get("text_threshold"),
            scope=data["scope"],
        )
        job = prelabel.prelabel_job_start(project=project, user=request.user, options=options)
        return Response(s.JobSerializer(job).data, status=201)


class JobDetail(GenericAPIView):
    serializer_class = s.JobSerializer

    def get(self, request: Request, job_id: int) -> Response:
        job, _ = job_for_user(request.user, job_id)
        return Response(s.JobSerializer(job).data)


class JobCancel(GenericAPIView):
    serializer_class = s.JobSerializer

    @extend_schema(request=None, responses=s.JobSerializer)
    def post(self, request: Request, job_id: int) -> Response:
        job, _ = job_for_user(request.user, job_id, manage=True)
        if request.data:
            raise Invalid("This endpoint takes no fields.")
        if not prelabel.prelabel_job_cancel(job=job):
            return Response({"error": "The job has already ended."}, status=409)
        job.refresh_from_db()
        return Response(s.JobSerializer(job).data)


# Exports and imports ---------------------------------------------------------------------------


class ProjectExports(GenericAPIView):
    serializer_class = s.ExportSerializer

    @extend_schema(responses=s.ExportSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id)
        page = self.paginate_queryset(export_list(project=project))
        return self.get_paginated_response(s.ExportSerializer(page, many=True).data)

    @extend_schema(request=s.ExportStartSerializer, responses={201: s.ExportSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.ExportStartSerializer, request)
        options = ExportOptions.from_json(data.get("options") or {})
        export = exports.export_start(project=project, user=request.user, fmt=data["format"], options=options)
        return Response(s.ExportSerializer(export).data, status=201)


class ExportDetail(GenericAPIView):
    serializer_class = s.ExportSerializer

    def get(self, request: Request, export_id: int) -> Response:
        return Response(s.ExportSerializer(export_for_user(request.user, export_id)).data)


class ExportDownload(GenericAPIView):
    serializer_class = None

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, export_id: int) -> FileResponse:
        return export_file_response(export_for_user(request.user, export_id))


class ProjectImports(GenericAPIView):
    serializer_class = s.ImportSerializer
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses={201: s.ImportReportSerializer, 400: s.ImportReportSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        """Import annotations from a dataset file (all or nothing; the report says why)."""
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.ImportSerializer, request)
        upload = data["file"]
        report = imports.annotations_import(
            project=project,
            fileobj=upload,
            name=upload.name,
            format=data["format"],
            user=request.user,
            create_classes=data["create_classes"],
        )
        return Response(report.as_dict(), status=201 if report.ok else 400)
