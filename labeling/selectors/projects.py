"""Reads. Each selector makes a constant number of queries whatever the project's size."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..access import projects_for_user
from ..models import Image, Invitation, LabelClass, Membership, Project, ProjectCounts


def project_counts(*, project: Project) -> ProjectCounts:
    """The project's counts row (kept by triggers, labeling/db_counters.py; one query). A project
    without one (only if someone deleted it: `manage.py project_counters --fix` puts it back)
    reads as zeros."""
    return ProjectCounts.objects.filter(project=project).first() or ProjectCounts(project=project)


def _counter(field: str) -> Coalesce:
    """A counter of the project's counts row in a project query (one join, no COUNT)."""
    return Coalesce(f"counts__{field}", Value(0), output_field=IntegerField())


def counts_image_total() -> Coalesce:
    """A project query's image count, from its counts row (the project list, the API, the admin)."""
    return sum((_counter(f"images_{status}") for status in Image.Status.values[1:]), _counter("images_new"))


def projects_of_user(*, user) -> QuerySet[Project]:
    """The user's projects with their image counts by status, from their counts rows (one query)."""
    status_counts = {f"images_{status}": _counter(f"images_{status}") for status in Image.Status.values}
    return (
        projects_for_user(user)
        .annotate(image_count=counts_image_total(), **status_counts)
        .order_by("-created_at", "-id")
    )


def count_of(queryset: QuerySet, link: str, **filters) -> Coalesce:
    """A correlated COUNT(*) subquery of `queryset` rows whose `link` is the outer row (no join
    fan-out in list queries)."""
    counted = (
        queryset.filter(**{link: OuterRef("pk")}, **filters)
        .order_by()
        .values(link)
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def projects_with_role(*, user) -> QuerySet[Project]:
    """The projects the user may see, each with the user's `api_role` (staff: "admin"), and its
    image and class counts from its counts row (one query, no per-row lookups, no COUNT)."""
    projects = projects_for_user(user)
    if user.is_staff:
        projects = projects.annotate(api_role=Value("admin"))
    else:
        member = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
        projects = projects.annotate(api_role=Subquery(member))
    return projects.annotate(image_count=counts_image_total(), class_count=_counter("classes"))


def class_list(*, project: Project) -> QuerySet[LabelClass]:
    return project.classes.order_by("order", "id")


def member_list(*, project: Project) -> QuerySet[Membership]:
    """The project's members with their users, managers first, then by user name."""
    return project.memberships.select_related("user").order_by("role", "user__username", "id")


def invitation_list(*, project: Project) -> QuerySet[Invitation]:
    """The project's pending invitations (not accepted, revoked or expired) with who made them,
    newest first."""
    return (
        project.invitations.filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
        .select_related("invited_by")
        .order_by("-created_at", "-id")
    )
