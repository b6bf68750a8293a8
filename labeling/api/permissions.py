"""Access for the API: the same helpers as the pages (labeling.access), plus DRF's pieces.

Rules (docs/architecture.md; issue 6): staff are admins of everything; a project's manager manages it, its
jobs and exports; an annotator reads its projects and edits annotations and image status.
Outsiders get 404 for anything in a project (its existence is not revealed), members without the
needed role 403, anonymous callers 401.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from ..access import can_manage


def require_manager(role: str | None) -> None:
    if not can_manage(role):
        raise PermissionDenied("Only the project's managers can do this.")
