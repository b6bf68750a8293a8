"""Writes. Business rules live here; views and tasks call these functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef
from rest_framework.authtoken.models import Token

from .. import model_choices
from ..access import can_manage, user_role
from ..models import (
    PALETTE,
    Annotation,
    Export,
    Image,
    ImportJob,
    LabelClass,
    Membership,
    PrelabelJobItem,
    Project,
)
from .images import stored_files_delete
from .prelabel import embedding_cache

# Projects ------------------------------------------------------------------------------------


@transaction.atomic
def project_create(*, user, name: str, classes: Iterable[dict] = (), **fields) -> Project:
    """Create a project with its classes; the creator becomes its manager."""
    project = Project(name=name, created_by=user if user and user.is_authenticated else None, **fields)
    if "detector" not in fields:  # the model's default, unless the admin's list lacks it
        project.detector = model_choices.default_detector(project.detector)
    if "segmenter" not in fields:
        project.segmenter = model_choices.default_segmenter(project.segmenter)
    project.full_clean()
    project.save()
    for order, spec in enumerate(classes):
        label_class_create(project=project, order=order, **spec)
    if user is not None and user.is_authenticated:
        Membership.objects.create(user=user, project=project, role=Membership.Role.MANAGER)
    return project


@dataclass(frozen=True)
class ClassEdit:
    """One class row of the project form: a new class (id None) or new values for an existing one."""

    id: int | None
    fields: dict


@transaction.atomic
def project_save(
    *,
    user,
    project: Project | None,
    fields: dict,
    class_edits: Sequence[ClassEdit] = (),
    deleted_class_ids: Iterable[int] = (),
) -> Project:
    """Create (project None) or change a project and its classes in one transaction: delete, then
    rename and change, then add classes after the existing ones. The creator becomes a manager."""
    creating = project is None
    if creating:
        project = Project(created_by=user if user.is_authenticated else None)
    for name, value in fields.items():
        setattr(project, name, value)
    project.full_clean()
    project.save()
    project.classes.filter(pk__in=list(deleted_class_ids)).delete()
    existing = {c.pk: c for c in project.classes.all()}
    # Renames may swap names (a → b, b → a): park the renamed classes under names nobody types
    # first, or the unique name constraint fails half-way through.
    for edit in class_edits:
        if edit.id is not None and edit.fields.get("name", existing[edit.id].name) != existing[edit.id].name:
            LabelClass.objects.filter(pk=edit.id).update(name=f"\u2063renaming {edit.id}")
    next_order = max((c.order for c in existing.values()), default=-1) + 1
    for edit in class_edits:
        if edit.id is None:
            label_class_create(project=project, order=next_order, **edit.fields)
            next_order += 1
            continue
        label_class = existing[edit.id]
        for name, value in edit.fields.items():
            setattr(label_class, name, value)
        label_class.save()
    if creating and user.is_authenticated:
        Membership.objects.get_or_create(
            user=user, project=project, defaults={"role": Membership.Role.MANAGER}
        )
    return project


def label_class_create(
    *, project: Project, name: str, prompt: str = "", color: str = "", order: int | None = None, **fields
) -> LabelClass:
    if order is None:
        order = project.classes.count()
    label_class = LabelClass(
        project=project,
        name=name,
        prompt=prompt,
        color=color or PALETTE[order % len(PALETTE)],
        order=order,
        **fields,
    )
    label_class.full_clean()
    label_class.save()
    return label_class


LAST_MANAGER = "A project must keep at least one manager."


def _lock_members(project: Project) -> None:
    """Inside a transaction: lock the project's row, so that every membership write of this
    project (add, role change, removal) waits for the one before it to commit and counts the
    managers it left. Locking only the manager rows is not enough: two removals at once would each
    count two managers and both delete."""
    list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True))


def _managers(project: Project) -> list[int]:
    return list(project.memberships.filter(role=Membership.Role.MANAGER).values_list("user_id", flat=True))


@transaction.atomic
def membership_set(*, project: Project, user, role: str) -> Membership:
    """Add a member or change a member's role; the last manager cannot be demoted."""
    _lock_members(project)
    if role != Membership.Role.MANAGER and _managers(project) == [user.pk]:
        raise ValueError(LAST_MANAGER)
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def membership_remove(*, project: Project, membership_id) -> bool:
    """Remove a member (False: no such member); a project always keeps at least one manager."""
    if not str(membership_id).isdigit():
        return False
    _lock_members(project)
    membership = project.memberships.filter(pk=membership_id).first()
    if membership is None:
        return False
    if membership.role == Membership.Role.MANAGER and _managers(project) == [membership.user_id]:
        raise ValueError(LAST_MANAGER)
    membership.delete()
    return True


# Deleting a project ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectDeleted:
    """What went with a deleted project."""

    name: str
    images: int
    files: int  # image files, thumbnails, export files and import files removed from storage
    embeddings: int  # SAM embedding files removed (those no other project's image shares)


def project_delete(*, project: Project, user) -> ProjectDeleted:
    """Delete a project (its managers and staff; PermissionDenied for anyone else) with all it
    holds: classes, members, images, annotations, pre-label jobs, exports, imports, its counts row
    and dashboard snapshot, and then their files: images, thumbnails, exports' and imports' files,
    and the SAM embeddings of its images (keyed by sha256 and segmenter, `inference.embeddings`)
    that no other project's image shares (under every segmenter).

    The rows go in one transaction, the annotations and job items first by one statement each (no
    row loaded); the files after it commits (a file whose removal fails is logged and left)."""
    if not can_manage(user_role(user, project)):
        raise PermissionDenied("Only the project's managers can delete it.")
    images = Image.objects.filter(project=project)
    other_copy = Image.objects.filter(sha256=OuterRef("sha256")).exclude(project=project)
    with transaction.atomic():
        _lock_members(project)  # a member added meanwhile waits, then finds no project
        pairs = list(images.values_list("file", "thumbnail"))
        names = [name for pair in pairs for name in pair]
        names += Export.objects.filter(project=project).values_list("file", flat=True)
        names += ImportJob.objects.filter(project=project).values_list("file", flat=True)
        orphans = list(images.filter(~Exists(other_copy)).values_list("sha256", flat=True))
        Annotation.objects.filter(image__project=project).delete()
        PrelabelJobItem.objects.filter(job__project=project).delete()
        name = project.name
        project.delete()
    removed = stored_files_delete(names)
    embeddings = embedding_cache().delete_every_model(orphans)
    return ProjectDeleted(name=name, images=len(pairs), files=removed, embeddings=embeddings)


# API writes ------------------------------------------------------------------------------------


PROJECT_EDITABLE = (
    "name", "description", "box_threshold", "text_threshold", "keep_threshold",
    "prompt_mode", "segment", "detector", "segmenter", "exemplar_detector",
)  # fmt: skip


@transaction.atomic
def project_update(*, project: Project, **fields) -> Project:
    """Change a project's settings (managers; the caller checks). ValidationError on bad values."""
    unknown = set(fields) - set(PROJECT_EDITABLE)
    if unknown:
        raise ValueError(f"Not editable: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(project, name, value)
    project.full_clean()
    project.save()
    return project


def token_issue(*, user) -> str:
    """The user's API token, made on first use."""
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def token_revoke(*, user) -> None:
    Token.objects.filter(user=user).delete()
