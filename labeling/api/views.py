"""API views: adapters like the pages' views. Check access (labeling.access), validate the input
(strict serializers), call one service or selector, answer. The review page calls these views
too, with the session and the CSRF header (its URLs: labeling.selectors.review.review_urls).

Errors are JSON with an "error" sentence, whatever their origin (exception_handler): a
serializer's refusal is 400 {"error": "...", "fields": {...}}; the services' ReviewError is
400 / 409 / 412 (with "current"); a missing version 428; an anonymous caller 401 (with
WWW-Authenticate: Token), a member without the role 403, an outsider 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import QuerySet
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from labeling.api.pagination import (
    KEYSET,
    NUMBERED,
    ByIdCursorPagination,
    NewestFirstCursorPagination,
)
from labeling.client_address import client_address
from labeling.selectors import navigation
from labeling.selectors import review as review_selectors
from labeling.selectors.exports import export_list
from labeling.selectors.images import image_with_counts, images_with_counts
from labeling.selectors.prelabel import job_list
from labeling.selectors.projects import class_list, invitation_list, member_list, projects_with_role
from labeling.selectors.prompt_lab import run_list
from labeling.services import exports, find_more, imports, prelabel, prompt_lab, review, segmentation
from labeling.services.images import image_delete, images_ingest
from labeling.services.invitations import invitation_revoke, member_add
from labeling.services.projects import (
    label_class_create,
    membership_remove,
    project_create,
    project_update,
    token_issue,
    token_revoke,
)
from labeling.services.review import UNSET, ReviewError
from labeling.views.exports import export_file_response

from ..access import (
    annotation_for_user,
    can_create_projects,
    can_manage,
    export_for_user,
    find_more_for_user,
    image_for_user,
    import_for_user,
    job_for_user,
    project_for_user,
    prompt_lab_candidate_for_user,
    prompt_lab_run_for_user,
)
from ..formats.base import FormatError
from ..formats.registry import export_options
from ..models import Annotation, Image, Project
from . import serializers as s
from .permissions import require_manager
from .schema import doc


def _messages(detail: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(field path, message) for each message of a DRF error detail (nested dicts and lists)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            yield from _messages(
                value, path if key == api_settings.NON_FIELD_ERRORS_KEY else (*path, str(key))
            )
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                yield from _messages(item, (*path, str(index)))
            else:
                yield path, str(item)
    else:
        yield path, str(detail)


def error_sentence(detail: Any) -> str:
    """A serializer's errors as one readable sentence: each message, after its field's path unless
    it starts with the field's name ("box must be ...": no "box: box must be ...")."""
    parts = []
    for path, message in _messages(detail):
        if path and message.startswith(path[-1]):
            path = path[:-1]
        parts.append(f"{'.'.join(path)}: {message}" if path else message)
    return " ".join(parts) or "Invalid input."


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Every error as JSON with an "error" sentence (what the review page shows): DRF's errors,
    the services' errors, a serializer's refusals (plus "fields", by field)."""
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
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, DRFValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {api_settings.NON_FIELD_ERRORS_KEY: detail}
        response.data = {"error": error_sentence(detail), "fields": fields}
    elif isinstance(response.data, dict) and "detail" in response.data:
        message = str(response.data["detail"])
        if isinstance(exc, ParseError) and message.startswith("JSON parse error - "):
            message = f"The body is not valid JSON: {message.removeprefix('JSON parse error - ')}"
        elif isinstance(exc, NotAcceptable):
            accept = context["request"].headers.get("Accept", "")
            message = f"This API answers JSON only (application/json), not {accept[:80]}."
        response.data = {"error": message}
    return response


def _input(
    serializer_class, request: Request, data: Any = None, *, partial: bool = False, **context: Any
) -> dict:
    """The request's input as the serializer validates it (400 otherwise); `context` gives the
    serializer what it checks against (the image, the If-Match header)."""
    serializer = serializer_class(
        data=request.data if data is None else data, partial=partial, context={"request": request, **context}
    )
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _versioned_input(serializer_class, request: Request, **context: Any) -> dict:
    """Input of a write on a version: the If-Match header goes to the serializer."""
    return _input(serializer_class, request, if_match=request.headers.get("If-Match", ""), **context)


def _annotation_response(annotation: dict, *, code: int = 200) -> Response:
    response = Response(annotation, status=code)
    response["ETag"] = f'"{annotation["version"]}"'
    return response


class ApiView(GenericAPIView):
    """Every API view's base: the query parameters a route takes are its `query_params` (and
    ?format=json); any other one is a 400 naming it, after authentication and permissions."""

    query_params: frozenset[str] = frozenset()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        taken = self.query_params | {api_settings.URL_FORMAT_OVERRIDE}
        unknown = sorted(set(request.query_params) - taken)
        if unknown:
            raise DRFValidationError(
                {
                    "query": [
                        f"Unknown query parameter(s): {', '.join(unknown)}. This route takes: "
                        f"{', '.join(sorted(taken))}."
                    ]
                }
            )


IF_MATCH = OpenApiParameter(
    "If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, description='The version edited, e.g. "3".'
)


# Auth ------------------------------------------------------------------------------------------


class ClientRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle (counts in the shared cache), keyed by the client address the login
    lockout uses too (labeling.client_address)."""

    def get_ident(self, request: Request) -> str:
        return client_address(request)


@doc("auth", post="Get an API token", delete="Revoke your API token")
class TokenView(ApiView):
    """POST username / password → a token (throttled, and refused with 429 after too many failed
    logins: django-axes). DELETE → revoke your own token."""

    throttle_classes = [ClientRateThrottle]
    throttle_scope = "auth"
    serializer_class = s.TokenRequestSerializer

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(auth=[], responses={200: s.TokenSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        return Response({"token": token_issue(user=serializer.validated_data["user"])})

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        token_revoke(user=request.user)
        return Response(status=204)


# Projects and classes --------------------------------------------------------------------------


@doc("projects", get="List the projects you may see", post="Create a project")
class ProjectList(ApiView):
    serializer_class = s.ProjectSerializer
    query_params = NUMBERED

    def get_queryset(self) -> QuerySet[Project]:
        return projects_with_role(user=self.request.user)

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


@doc("projects", get="Get a project", patch="Change a project's settings")
class ProjectDetail(ProjectList):
    http_method_names = ["get", "patch", "head", "options"]
    query_params = frozenset()

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


class ProjectCollection(ApiView):
    """A project's list (GET, members: a selector's rows) and the POST that makes one more
    (managers: the input serializer, then one service), answered 201. Subclasses name the three."""

    input_serializer: type[serializers.Serializer]
    query_params = NUMBERED

    def rows(self, project: Project) -> QuerySet:
        raise NotImplementedError

    def create(self, *, project: Project, user, data: dict) -> Any:
        raise NotImplementedError

    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id)
        page = self.paginate_queryset(self.rows(project))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        created = self.create(project=project, user=request.user, data=_input(self.input_serializer, request))
        return Response(self.get_serializer(created).data, status=201)


def collection_schema(output, create_input):
    return extend_schema_view(
        get=extend_schema(responses=output(many=True)),
        post=extend_schema(request=create_input, responses={201: output}),
    )


@doc("classes", get="List a project's classes", post="Add a class to a project")
@collection_schema(s.LabelClassSerializer, s.LabelClassSerializer)
class ProjectClasses(ProjectCollection):
    """The project's classes (members); POST adds one (managers)."""

    serializer_class = input_serializer = s.LabelClassSerializer

    def rows(self, project: Project) -> QuerySet:
        return class_list(project=project)

    def create(self, *, project: Project, user, data: dict) -> Any:
        return label_class_create(project=project, **data)


@doc(
    "members",
    get="List a project's members",
    post="Add a member by user name or e-mail, or invite an e-mail address",
)
class ProjectMembers(ApiView):
    """The project's members and their roles (managers); numbered pages, a project has few."""

    serializer_class = s.MembershipSerializer
    query_params = NUMBERED

    @extend_schema(responses=s.MembershipSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        page = self.paginate_queryset(member_list(project=project))
        return self.get_paginated_response(s.MembershipSerializer(page, many=True).data)

    @extend_schema(
        request=s.MembershipInputSerializer,
        responses={
            200: OpenApiResponse(
                s.MembershipSerializer, description="An existing user: member with the role."
            ),
            201: OpenApiResponse(
                s.InvitationSerializer,
                description="An e-mail address without an account: an invitation; its link is answered once.",
            ),
        },
    )
    def post(self, request: Request, project_id: int) -> Response:
        """Add a user (by user name or e-mail address) to the project, or change their role; an
        e-mail address that matches no account gets an invitation (mailed when mail is set up)."""
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.MembershipInputSerializer, request)
        try:
            added = member_add(
                project=project,
                identifier=data["identifier"],
                role=data["role"],
                invited_by=request.user,
                build_url=request.build_absolute_uri,
            )
        except ValueError as exc:
            return Response({"error": str(exc)}, status=409)
        if added.invitation is not None:
            invitation = added.invitation
            invitation.link, invitation.mailed = added.url, added.mailed
            return Response(s.InvitationSerializer(invitation).data, status=201)
        return Response(s.MembershipSerializer(added.membership).data)


@doc("members", delete="Remove a member from a project")
class ProjectMember(ApiView):
    serializer_class = s.MembershipSerializer

    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_id: int, membership_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        try:
            removed = membership_remove(project=project, membership_id=membership_id)
        except ValueError as exc:
            return Response({"error": str(exc)}, status=409)
        if not removed:
            raise Http404("No such member.")
        return Response(status=204)


@doc("members", get="List a project's pending invitations")
class ProjectInvitations(ApiView):
    """The project's pending invitations (managers): their links are never shown again."""

    serializer_class = s.InvitationSerializer
    query_params = NUMBERED

    @extend_schema(responses=s.PendingInvitationSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        page = self.paginate_queryset(invitation_list(project=project))
        return self.get_paginated_response(s.PendingInvitationSerializer(page, many=True).data)


@doc("members", delete="Revoke a pending invitation")
class ProjectInvitation(ApiView):
    serializer_class = s.PendingInvitationSerializer

    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_id: int, invitation_id: int) -> Response:
        """Revoke a pending invitation: its link no longer works (410)."""
        project, _ = project_for_user(request.user, project_id, manage=True)
        if not invitation_revoke(project=project, invitation_id=invitation_id):
            raise Http404("No such pending invitation.")
        return Response(status=204)


# Images ----------------------------------------------------------------------------------------


@doc("images", get="List a project's images", post="Upload images or zip archives")
class ProjectImages(ApiView):
    serializer_class = s.ImageSerializer
    parser_classes = [MultiPartParser, FormParser]
    pagination_class = ByIdCursorPagination
    query_params = frozenset(s.ImageFilterSerializer().fields)

    @extend_schema(
        parameters=[s.ImageFilterSerializer],
        responses=s.ImageSerializer(many=True),
    )
    def get(self, request: Request, project_id: int) -> Response:
        """Images of the project by id, a keyset page at a time (?cursor= from the next / previous
        links); filters: ?status=, ?class_id= (has an annotation of the class),
        ?has_proposals=true|false."""
        project, _ = project_for_user(request.user, project_id)
        query = {k: v for k, v in request.query_params.items() if k != api_settings.URL_FORMAT_OVERRIDE}
        filters = _input(s.ImageFilterSerializer, request, data=query)
        images = images_with_counts(
            project=project,
            status=filters.get("status"),
            class_id=filters.get("class_id"),
            has_proposals=filters.get("has_proposals"),
        )
        page = self.paginate_queryset(images)
        return self.get_paginated_response(s.ImageSerializer(page, many=True).data)

    @extend_schema(request=s.UploadSerializer, responses={201: s.IngestReportSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        """Upload image files and / or zip archives of images (multipart, field "files")."""
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.UploadSerializer, request)
        report = images_ingest(project=project, files=[(f.name, f) for f in data["files"]], user=request.user)
        return Response(report.as_dict(), status=201 if report.created else 200)


@doc("images", get="Get an image", delete="Delete an image")
class ImageDetail(ApiView):
    serializer_class = s.ImageSerializer

    def get(self, request: Request, image_id: int) -> Response:
        image_for_user(request.user, image_id)
        return Response(s.ImageSerializer(image_with_counts(image_id=image_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, image_id: int) -> Response:
        image, role = image_for_user(request.user, image_id)
        require_manager(role)
        image_delete(image=image, user=request.user)
        return Response(status=204)


class ImageClose(ApiView):
    """Submit (done) or skip the image: its status, recorded as the caller's review; "next" is the
    review queue page, where the review page goes on with a POST (a form with the CSRF token: it
    leases the next image and opens it)."""

    serializer_class = s.ImageCloseSerializer
    close = staticmethod(review.image_submit)

    @extend_schema(responses=s.ImageCloseResultSerializer)
    def post(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        data = _input(s.ImageCloseSerializer, request)
        self.close(image=image, user=request.user, version=data.get("version"))
        image.refresh_from_db(fields=["status", "version"])
        return Response(
            {
                "id": image.pk,
                "status": image.status,
                "version": image.version,
                "next": review_selectors.review_next_url(project_id=image.project_id),
            }
        )


@doc("review", post="Submit an image as done")
class ImageSubmit(ImageClose):
    close = staticmethod(review.image_submit)


@doc("review", post="Skip an image")
class ImageSkip(ImageClose):
    close = staticmethod(review.image_skip)


# Review leases (taken by POST only: no GET leases or queues anything) ---------------------------


@doc("review", post="Lease an image for review")
class ImageLease(ApiView):
    """The review page claims its image: lease it to the caller (or renew their lease) and queue
    the embeddings for click-to-segment; the answer is the page's data with the lease
    (lease_expires_at, lease_seconds). 409 with "held_by" and "lease_expires_at" when someone
    else holds it: the page opens read-only; 403 for a done image an annotator did not review.
    {"version": v}: the caller already has the data of that version (prefetched); if the image is
    still at it, the answer is only the lease, with "unchanged": true."""

    serializer_class = s.LeaseClaimSerializer

    @extend_schema(
        request=s.LeaseClaimSerializer,
        responses={
            200: OpenApiTypes.OBJECT,
            403: OpenApiResponse(description="A done image someone else reviewed: read-only for annotators."),
            409: OpenApiResponse(description="Someone else holds the image (held_by, lease_expires_at)."),
        },
    )
    def post(self, request: Request, image_id: int) -> Response:
        image, role = image_for_user(request.user, image_id)
        data = _input(s.LeaseClaimSerializer, request)
        return Response(
            review.image_lease_claim(
                image=image, user=request.user, can_manage=can_manage(role), known_version=data.get("version")
            )
        )


@doc("review", get="Peek at the review queue's next image")
class ImagePeekNext(ApiView):
    """The image the review queue would hand the caller after this one, read only (nothing is
    leased: another annotator may take it meanwhile, which the claim then tells), with the
    review page's data, for the page to prefetch while this image is reviewed: {"next": {"id",
    "version", "review_url", "data"}} or {"next": null}. ?queue=skipped: the skipped queue."""

    serializer_class = s.QueueChoiceSerializer
    query_params = frozenset(s.QueueChoiceSerializer().fields)

    @extend_schema(parameters=[s.QueueChoiceSerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, image_id: int) -> Response:
        image, role = image_for_user(request.user, image_id)
        query = _input(s.QueueChoiceSerializer, request, data=_query(request))
        return Response(
            {
                "next": navigation.review_peek(
                    image=image, user=request.user, can_manage=can_manage(role), queue=query.get("queue")
                )
            }
        )


@doc("review", get="The image before this one in review")
class ImagePrevious(ApiView):
    """The image "previous" (P) opens from this one: {"previous": {"id", "review_url"}}, or
    {"previous": null} on the first image."""

    serializer_class = None

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        return Response({"previous": navigation.review_previous(image=image, user=request.user)})


@doc("review", get="A window of images for the filmstrip")
class ProjectFilmstrip(ApiView):
    """The filmstrip: a window of the project's images by id with their status and thumbnail:
    ?around=<id> (limit before it, limit from it on), ?before=<id> or ?after=<id> (more);
    ?limit= up to 50. Every member; a range read on the index whatever the project's size."""

    serializer_class = s.FilmstripQuerySerializer
    query_params = frozenset(s.FilmstripQuerySerializer().fields)

    @extend_schema(parameters=[s.FilmstripQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id)
        query = _input(s.FilmstripQuerySerializer, request, data=_query(request))
        return Response(navigation.image_window(project=project, **query))


@doc("images", get="Find images by name prefix")
class ProjectImageNames(ApiView):
    """Jump by name: the project's images whose original name starts with ?prefix= (as typed),
    by name, at most ?limit= (up to 20); none for an empty prefix. Every member; one range read
    on the name index."""

    serializer_class = s.NameSearchSerializer
    query_params = frozenset(s.NameSearchSerializer().fields)

    @extend_schema(parameters=[s.NameSearchSerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id)
        query = _input(s.NameSearchSerializer, request, data=_query(request))
        return Response({"images": navigation.images_by_name(project=project, **query)})


def _query(request: Request) -> dict:
    """The query string's parameters (less ?format=) as a serializer's input."""
    return {k: v for k, v in request.query_params.items() if k != api_settings.URL_FORMAT_OVERRIDE}


# Annotations -----------------------------------------------------------------------------------


@doc("annotations", get="List an image's annotations", post="Draw an annotation")
class ImageAnnotations(ApiView):
    serializer_class = s.AnnotationSerializer
    pagination_class = ByIdCursorPagination
    query_params = KEYSET

    @extend_schema(responses=s.AnnotationSerializer(many=True))
    def get(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        page = self.paginate_queryset(review_selectors.annotation_rows(image=image))
        return self.get_paginated_response([review_selectors.annotation_json(row=row) for row in page])

    @extend_schema(request=s.AnnotationCreateSerializer, responses={201: s.AnnotationSerializer})
    def post(self, request: Request, image_id: int) -> Response:
        """A drawn annotation (a box, or a mask from click-to-segment), accepted at once."""
        image, _ = image_for_user(request.user, image_id)
        data = _input(s.AnnotationCreateSerializer, request, image=image)
        annotation = review.annotation_create(image=image, user=request.user, **data)
        return _annotation_response(annotation, code=201)


@doc("annotations", get="Get an annotation", patch="Edit an annotation", delete="Delete an annotation")
class AnnotationDetail(ApiView):
    serializer_class = s.AnnotationSerializer

    def get(self, request: Request, annotation_id: int) -> Response:
        annotation, _ = annotation_for_user(request.user, annotation_id)
        return _annotation_response(review_selectors.annotation_current(annotation_id=annotation.pk))

    @extend_schema(
        request=s.AnnotationUpdateSerializer,
        parameters=[IF_MATCH],
        responses={200: s.AnnotationSerializer, 412: OpenApiResponse(description="Stale version")},
    )
    def patch(self, request: Request, annotation_id: int) -> Response:
        annotation, _ = annotation_for_user(request.user, annotation_id)
        data = _versioned_input(s.AnnotationUpdateSerializer, request, image=annotation.image)
        changes = {name: data.get(name, UNSET) for name in s.AnnotationUpdateSerializer.CHANGES}
        saved = review.annotation_update(
            annotation=annotation, user=request.user, version=data["version"], **changes
        )
        return _annotation_response(saved)

    @extend_schema(request=s.VersionSerializer, parameters=[IF_MATCH], responses={204: None})
    def delete(self, request: Request, annotation_id: int) -> Response:
        annotation, _ = annotation_for_user(request.user, annotation_id)
        data = _versioned_input(s.VersionSerializer, request)
        review.annotation_delete(annotation=annotation, user=request.user, version=data["version"])
        return Response(status=204)


class AnnotationTriage(ApiView):
    serializer_class = s.VersionSerializer
    state = Annotation.State.ACCEPTED

    @extend_schema(parameters=[IF_MATCH], responses=s.AnnotationSerializer)
    def post(self, request: Request, annotation_id: int) -> Response:
        annotation, _ = annotation_for_user(request.user, annotation_id)
        data = _versioned_input(s.VersionSerializer, request)
        saved = review.annotation_update(
            annotation=annotation, user=request.user, version=data["version"], state=self.state
        )
        return _annotation_response(saved)


@doc("annotations", post="Accept an annotation")
class AnnotationAccept(AnnotationTriage):
    state = Annotation.State.ACCEPTED


@doc("annotations", post="Reject an annotation")
class AnnotationReject(AnnotationTriage):
    state = Annotation.State.REJECTED


class ImageStatesChange(ApiView):
    """A POST that changes the state of many annotations of the image at once, each on its
    version: the saved ones in "annotations", the stale ones' ids in "conflicts" and as they are
    now in "current". Subclasses say which annotations (`change`)."""

    def change(self, *, image: Image, user, data: dict) -> dict:
        raise NotImplementedError

    @extend_schema(responses=s.BulkResultSerializer)
    def post(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        data = _input(self.serializer_class, request)
        return Response(self.change(image=image, user=request.user, data=data))


@doc("annotations", post="Set the states of several annotations")
class ImageAnnotationStates(ImageStatesChange):
    """Set the states of the listed annotations (id, version, state)."""

    serializer_class = s.AnnotationStatesSerializer

    def change(self, *, image: Image, user, data: dict) -> dict:
        return review.annotations_set_states(image=image, user=user, updates=data["updates"])


@doc("annotations", post="Accept an image's proposals above a score")
class AcceptAbove(ImageStatesChange):
    """Accept every proposal of the image scoring at least min_score (at their current versions)."""

    serializer_class = s.AcceptAboveSerializer

    def change(self, *, image: Image, user, data: dict) -> dict:
        return review.annotations_accept_above(image=image, user=user, min_score=data["min_score"])


@doc("segmentation", post="Segment an object from points or a box")
class ImageSegment(ApiView):
    """Points / labels / box (and an annotation to refine) → a mask on the image's cached SAM
    embedding; 202 while it is prepared (with Retry-After); 503 / 422 with the reason when it
    cannot be made."""

    serializer_class = s.SegmentSerializer

    @extend_schema(
        responses={
            200: OpenApiTypes.OBJECT,
            202: OpenApiTypes.OBJECT,
            422: OpenApiResponse(description="The image cannot be read to compute its embedding."),
            503: OpenApiResponse(
                description="The segmenter cannot load, the embedding failed, or the task queue is down."
            ),
        }
    )
    def post(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        data = _input(s.SegmentSerializer, request, image=image)
        refine = segmentation.refine_target(user=request.user, image=image, annotation_id=data["annotation"])
        status, body = segmentation.segment_answer(
            image=image,
            user=request.user,
            points=data["points"],
            labels=data["labels"],
            box=data["box"],
            refine=refine,
            object_token=data["object"],
            retry=data["retry"],
        )
        response = Response(body, status=status)
        if status == 202:
            response["Retry-After"] = str(segmentation.SEGMENT_RETRY_AFTER)
        return response


@doc("segmentation", post="Find more objects like an annotation (SAM 3)")
class ImageFindMore(ApiView):
    """ "Find more like this": the annotation's box is the positive example, the image's rejected
    annotations of its class the negative ones; SAM 3 runs on a worker (interactive queue) and
    adds the other instances on the image as proposals of that class, none duplicating an
    annotation already there. 202 with the request (`status_url`: poll it until `status` is done
    or failed). Only the image's lease holder asks (403 naming them otherwise); 409 when the
    project has no SAM 3 model or a search is already running on the image."""

    serializer_class = s.FindMoreStartSerializer

    @extend_schema(
        responses={
            202: OpenApiTypes.OBJECT,
            409: OpenApiResponse(description="No SAM 3 model for this project, or a search already running."),
        }
    )
    def post(self, request: Request, image_id: int) -> Response:
        image, _ = image_for_user(request.user, image_id)
        data = _input(s.FindMoreStartSerializer, request)
        started = find_more.find_more_start(image=image, user=request.user, annotation_id=data["annotation"])
        body = review_selectors.find_more_json(request=started)
        return Response(body, status=202, headers={"Location": body["status_url"]})


@doc("segmentation", get="Get a find-more request")
class FindMoreDetail(ApiView):
    """A "find more like this" request: queued, running, done (with `created` and the new
    proposals in `annotations`) or failed (with `error`). Members of the image's project."""

    serializer_class = None

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, request_id: int) -> Response:
        found = find_more_for_user(request.user, request_id)
        return Response(review_selectors.find_more_json(request=found))


@doc("review", post="Save the project's or a class's review threshold")
class ProjectThreshold(ApiView):
    """The review threshold (managers): the project's, or one class's ({"class_id": ...}; null
    clears the class's own threshold). The review page's slider saves here."""

    serializer_class = s.ThresholdSerializer

    @extend_schema(responses=s.ThresholdResultSerializer)
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.ThresholdSerializer, request)
        value = review.threshold_save(project=project, **data)
        return Response({"box_threshold": value, "class_id": data["class_id"]})


# Jobs ------------------------------------------------------------------------------------------


@doc("jobs", get="List a project's pre-label jobs", post="Start a pre-label job")
@collection_schema(s.JobSerializer, s.JobStartSerializer)
class ProjectJobs(ProjectCollection):
    """The project's pre-label jobs, newest first (members); POST starts one (managers)."""

    serializer_class = s.JobSerializer
    input_serializer = s.JobStartSerializer
    pagination_class = NewestFirstCursorPagination
    query_params = KEYSET

    def rows(self, project: Project) -> QuerySet:
        return job_list(project=project)

    def create(self, *, project: Project, user, data: dict) -> Any:
        options = prelabel.JobOptions(
            class_ids=data.get("class_ids"),
            box_threshold=data.get("box_threshold"),
            text_threshold=data.get("text_threshold"),
            scope=data["scope"],
            detector=data.get("detector"),
        )
        return prelabel.prelabel_job_start(project=project, user=user, options=options)


@doc("jobs", get="Get a pre-label job")
class JobDetail(ApiView):
    serializer_class = s.JobSerializer

    def get(self, request: Request, job_id: int) -> Response:
        job, _ = job_for_user(request.user, job_id)
        return Response(s.JobSerializer(job).data)


@doc("jobs", post="Cancel a pre-label job")
class JobCancel(ApiView):
    serializer_class = s.JobSerializer

    @extend_schema(request=None, responses=s.JobSerializer)
    def post(self, request: Request, job_id: int) -> Response:
        job, _ = job_for_user(request.user, job_id, manage=True)
        if request.data:
            raise DRFValidationError("This endpoint takes no fields.")
        if not prelabel.prelabel_job_cancel(job=job):
            return Response({"error": "The job has already ended."}, status=409)
        job.refresh_from_db()
        return Response(s.JobSerializer(job).data)


# Exports and imports ---------------------------------------------------------------------------


@doc("exports", get="List a project's exports", post="Start an export")
@collection_schema(s.ExportSerializer, s.ExportStartSerializer)
class ProjectExports(ProjectCollection):
    """The project's exports, newest first (members); POST starts one (managers)."""

    serializer_class = s.ExportSerializer
    input_serializer = s.ExportStartSerializer
    pagination_class = NewestFirstCursorPagination
    query_params = KEYSET

    def rows(self, project: Project) -> QuerySet:
        return export_list(project=project)

    def get(self, request: Request, project_id: int) -> Response:
        project, role = project_for_user(request.user, project_id)
        page = self.paginate_queryset(self.rows(project))
        context = {**self.get_serializer_context(), "can_download": can_manage(role)}  # managers only
        return self.get_paginated_response(self.get_serializer(page, many=True, context=context).data)

    def create(self, *, project: Project, user, data: dict) -> Any:
        options = export_options(data["format"], data.get("options") or {})
        return exports.export_start(project=project, user=user, fmt=data["format"], options=options)


@doc("exports", get="Get an export")
class ExportDetail(ApiView):
    serializer_class = s.ExportSerializer

    def get(self, request: Request, export_id: int) -> Response:
        export = export_for_user(request.user, export_id)
        _, role = project_for_user(request.user, export.project_id)
        return Response(s.ExportSerializer(export, context={"can_download": can_manage(role)}).data)


@doc("exports", get="Download an export's file")
class ExportDownload(ApiView):
    serializer_class = None

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, export_id: int) -> FileResponse:
        return export_file_response(export_for_user(request.user, export_id, manage=True))


@doc("imports", post="Start an annotation import")
class ProjectImports(ApiView):
    serializer_class = s.ImportSerializer
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses={202: s.ImportJobSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        """Start importing annotations from a dataset file (managers): 202 with the import, whose
        `status_url` tells its progress and, once it has ended, its report (all or nothing)."""
        project, _ = project_for_user(request.user, project_id, manage=True)
        data = _input(s.ImportSerializer, request)
        upload = data["file"]
        job = imports.import_start(
            project=project,
            user=request.user,
            fileobj=upload,
            name=upload.name,
            format=data["format"],
            create_classes=data["create_classes"],
        )
        body = s.ImportJobSerializer(job).data
        return Response(body, status=202, headers={"Location": body["status_url"]})


@doc("imports", get="Get an import")
class ImportDetail(ApiView):
    serializer_class = s.ImportJobSerializer

    def get(self, request: Request, import_id: int) -> Response:
        """An import's status, progress and report (members of its project)."""
        return Response(s.ImportJobSerializer(import_for_user(request.user, import_id)).data)


# Prompt lab ------------------------------------------------------------------------------------


@doc("prompt-lab", get="List a project's prompt lab runs", post="Start a prompt lab run")
@collection_schema(s.PromptLabRunSerializer, s.PromptLabStartSerializer)
class ProjectPromptLabRuns(ProjectCollection):
    """A project's prompt lab runs, newest first, each with its candidates and their figures;
    POST starts one (201, then poll the run). Managers only, reading included (the page is a
    manager's tab)."""

    serializer_class = s.PromptLabRunSerializer
    input_serializer = s.PromptLabStartSerializer
    pagination_class = NewestFirstCursorPagination
    query_params = KEYSET

    def rows(self, project: Project) -> QuerySet:
        return run_list(project=project)

    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_for_user(request.user, project_id, manage=True)
        page = self.paginate_queryset(self.rows(project))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def create(self, *, project: Project, user, data: dict) -> Any:
        run = prompt_lab.prompt_lab_start(
            project=project,
            user=user,
            label_class_id=data["class_id"],
            prompts=data["prompts"],
            detector=data.get("detector"),
            sample_size=data["sample_size"],
            seed=data["seed"],
        )
        return run_list(project=project).get(pk=run.pk)


@doc("prompt-lab", get="Get a prompt lab run with its candidates")
class PromptLabRunDetail(ApiView):
    serializer_class = s.PromptLabRunSerializer

    def get(self, request: Request, run_id: int) -> Response:
        run = prompt_lab_run_for_user(request.user, run_id, manage=True)
        return Response(s.PromptLabRunSerializer(run_list(project=run.project).get(pk=run.pk)).data)


@doc("prompt-lab", post="Cancel a prompt lab run")
class PromptLabRunCancel(ApiView):
    serializer_class = s.PromptLabRunSerializer

    @extend_schema(request=None, responses=s.PromptLabRunSerializer)
    def post(self, request: Request, run_id: int) -> Response:
        run = prompt_lab_run_for_user(request.user, run_id, manage=True)
        if request.data:
            raise DRFValidationError("This endpoint takes no fields.")
        if not prompt_lab.prompt_lab_run_cancel(run=run):
            return Response({"error": "The run has already ended."}, status=409)
        return Response(s.PromptLabRunSerializer(run_list(project=run.project).get(pk=run.pk)).data)


@doc("prompt-lab", post="Use a candidate's prompt (and threshold) for its class")
class PromptLabCandidateUse(ApiView):
    serializer_class = s.PromptLabUseSerializer

    @extend_schema(request=s.PromptLabUseSerializer, responses=s.LabelClassSerializer)
    def post(self, request: Request, candidate_id: int) -> Response:
        """The candidate's prompt becomes its class's prompt; with `set_threshold`, its F1-best
        threshold the class's box threshold. The project's detector stays as it is."""
        candidate = prompt_lab_candidate_for_user(request.user, candidate_id, manage=True)
        data = _input(s.PromptLabUseSerializer, request)
        label_class = prompt_lab.prompt_lab_candidate_use(
            candidate=candidate, set_threshold=data["set_threshold"]
        )
        return Response(s.LabelClassSerializer(label_class).data)
