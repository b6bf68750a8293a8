"""Who may see and change what. One helper per aggregate, used by every view and endpoint.

A user who is not a member of a project gets 404 for everything in it (its existence is not
revealed); a member without the needed role gets 403. Staff users are admins of everything.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404

from .models import (
    Annotation,
    Export,
    FindMoreRequest,
    Image,
    ImportJob,
    Membership,
    PrelabelJob,
    Project,
    PromptLabCandidate,
    PromptLabRun,
)

User = AbstractBaseUser | AnonymousUser


def projects_for_user(user: User) -> QuerySet[Project]:
    """Projects the user may see."""
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(Exists(Membership.objects.filter(project=OuterRef("pk"), user=user)))


def user_role(user: User, project: Project) -> str | None:
    """The user's role in the project: "admin" for staff, a Membership role, or None."""
    if not user.is_authenticated:
        return None
    if user.is_staff:
        return "admin"
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def can_manage(role: str | None) -> bool:
    return role in ("admin", Membership.Role.MANAGER)


def can_create_projects(user: User) -> bool:
    return user.is_authenticated and (user.is_staff or user.has_perm("labeling.add_project"))


def _for_user(user: User, found, project: Project | None, what: str, *, manage: bool = False) -> str:
    """The user's role in `project` (the one `found` belongs to); 404 when `found` is missing or
    the user is not a member, 403 when `manage` is needed and the user is no manager."""
    role = user_role(user, project) if found is not None else None
    if role is None:
        raise Http404(f"No such {what}.")
    if manage and not can_manage(role):
        raise PermissionDenied("Only the project's managers can do this.")
    return role


def project_for_user(user: User, project_id: int, *, manage: bool = False) -> tuple[Project, str]:
    """The project and the user's role in it; 404 for outsiders, 403 when `manage` is needed."""
    project = Project.objects.filter(pk=project_id).first()
    return project, _for_user(user, project, project, "project", manage=manage)


def image_for_user(user: User, image_id: int) -> tuple[Image, str]:
    """The image and the user's role in its project; 404 when the user may not see it."""
    image = Image.objects.select_related("project").filter(pk=image_id).first()
    return image, _for_user(user, image, image and image.project, "image")


def annotation_for_user(user: User, annotation_id: int) -> tuple[Annotation, str]:
    """The annotation (with its image and project) and the user's role; same rule as its image."""
    annotation = Annotation.objects.select_related("image__project").filter(pk=annotation_id).first()
    return annotation, _for_user(user, annotation, annotation and annotation.image.project, "annotation")


def job_for_user(user: User, job_id: int, *, manage: bool = False) -> tuple[PrelabelJob, str]:
    """A pre-label job and the user's role in its project; 404 / 403 like project_for_user."""
    job = PrelabelJob.objects.select_related("project").filter(pk=job_id).first()
    return job, _for_user(user, job, job and job.project, "job", manage=manage)


def export_for_user(user: User, export_id: int, *, manage: bool = False) -> Export:
    """An export of a project the user is a member of (404 otherwise); with `manage`, 403 unless
    the user manages it (downloads: only managers and staff take the data out)."""
    export = Export.objects.select_related("project").filter(pk=export_id).first()
    _for_user(user, export, export and export.project, "export", manage=manage)
    return export


def import_for_user(user: User, import_id: int) -> ImportJob:
    """An import of a project the user is a member of (404 otherwise)."""
    job = ImportJob.objects.select_related("project").filter(pk=import_id).first()
    _for_user(user, job, job and job.project, "import")
    return job


def find_more_for_user(user: User, request_id: int) -> FindMoreRequest:
    """A "find more like this" request on an image the user may see (404 otherwise)."""
    request = FindMoreRequest.objects.select_related("image__project").filter(pk=request_id).first()
    _for_user(user, request, request and request.image.project, "find-more request")
    return request


def prompt_lab_run_for_user(user: User, run_id: int, *, manage: bool = False) -> PromptLabRun:
    """A prompt lab run of a project the user is a member of (404 otherwise); with `manage`,
    403 unless the user manages it."""
    run = PromptLabRun.objects.select_related("project", "label_class").filter(pk=run_id).first()
    _for_user(user, run, run and run.project, "prompt lab run", manage=manage)
    return run


def prompt_lab_candidate_for_user(
    user: User, candidate_id: int, *, manage: bool = False
) -> PromptLabCandidate:
    """A candidate of a prompt lab run, by the same rule as its run."""
    candidate = (
        PromptLabCandidate.objects.select_related("run__project", "run__label_class")
        .filter(pk=candidate_id)
        .first()
    )
    _for_user(user, candidate, candidate and candidate.run.project, "prompt lab candidate", manage=manage)
    return candidate
