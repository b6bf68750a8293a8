"""Writes. Business rules live here; views and tasks call these functions."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import PALETTE, LabelClass, Membership, Project

# Projects ------------------------------------------------------------------------------------


@transaction.atomic
def project_create(*, user, name: str, classes: Iterable[dict] = (), **fields) -> Project:
    """Create a project with its classes; the creator becomes its manager."""
    project = Project(name=name, created_by=user if user and user.is_authenticated else None, **fields)
    project.full_clean()
    project.save()
    for order, spec in enumerate(classes):
        label_class_create(project=project, order=order, **spec)
    if user is not None and user.is_authenticated:
        Membership.objects.create(user=user, project=project, role=Membership.Role.MANAGER)
    return project


@transaction.atomic
def project_save(*, form, classes_formset, user) -> Project:
    """Save a validated project form and its classes formset (create or edit) in one go."""
    creating = form.instance.pk is None
    project = form.save(commit=False)
    if creating and user.is_authenticated:
        project.created_by = user
    project.save()
    classes_formset.instance = project
    classes_formset.save()
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


@transaction.atomic
def membership_set(*, project: Project, user, role: str) -> Membership:
    """Add a member or change a member's role; the last manager cannot be demoted."""
    managers = list(
        project.memberships.select_for_update()
        .filter(role=Membership.Role.MANAGER)
        .values_list("user_id", flat=True)
    )
    if role != Membership.Role.MANAGER and managers == [user.pk]:
        raise ValueError(LAST_MANAGER)
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def membership_remove(*, project: Project, membership_id) -> None:
    """Remove a member; a project always keeps at least one manager."""
    membership = (
        project.memberships.filter(pk=membership_id).first() if str(membership_id).isdigit() else None
    )
    if membership is None:
        return
    if (
        membership.role == Membership.Role.MANAGER
        and project.memberships.filter(role=Membership.Role.MANAGER).count() == 1
    ):
        raise ValueError(LAST_MANAGER)
    membership.delete()


# API writes ------------------------------------------------------------------------------------


PROJECT_EDITABLE = (
    "name", "description", "box_threshold", "text_threshold", "keep_threshold",
    "prompt_mode", "segment", "detector", "segmenter",
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


def membership_add_by_username(*, project: Project, username: str, role: str) -> Membership:
    """Add the active user named `username` to the project, or change their role (membership_set:
    ValueError for the last manager). ValidationError when there is no such active user."""
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ValidationError(f"No active user named {username!r:.150}.")
    return membership_set(project=project, user=user, role=role)
