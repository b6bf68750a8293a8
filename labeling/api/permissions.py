"""Access for the API: the same helpers as the pages (labeling.access), plus DRF's pieces.

Rules (docs/architecture.md; issue 6): staff are admins of everything; a project's manager manages it, its
jobs and exports; an annotator reads its projects and edits annotations and image status.
Outsiders get 404 for anything in a project (its existence is not revealed), members without the
needed role 403, anonymous callers 401.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery, Value

from ..access import can_manage, projects_for_user
from ..models import Membership, Project


def require_manager(role: str | None) -> None:
    if not can_manage(role):
        raise PermissionDenied("Only the project's managers can do this.")


def projects_with_role(user) -> QuerySet[Project]:
    """The projects the user may see, each annotated with `role` (one query, no per-row lookups)."""
    projects = projects_for_user(user)
    if user.is_staff:
        return projects.annotate(api_role=Value("admin"))
    member = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    return projects.annotate(api_role=Subquery(member))
