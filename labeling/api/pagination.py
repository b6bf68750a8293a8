"""The API's two kinds of pages.

Lists whose total is cheap (projects, classes, members: a handful of rows per user or project)
page by number with a count: `?page=`, DRF's PageNumberPagination, the default in settings.
Lists that grow with the project (images, an image's annotations, jobs, exports) page by keyset:
`?cursor=` (opaque), DRF's CursorPagination, with `next` / `previous` links and no count. Their
page is one indexed range read with a LIMIT, so the last page costs what the first does; the image
list's per-image counts (correlated subqueries) run for the page's rows only.
"""

from __future__ import annotations

from rest_framework.pagination import CursorPagination
from rest_framework.settings import api_settings

NUMBERED = frozenset({"page"})  # the query parameters of a numbered list
KEYSET = frozenset({"cursor"})  # the query parameters of a keyset list


class ByIdCursorPagination(CursorPagination):
    """Keyset pages in id order (images, annotations): the cursor is the last id seen."""

    ordering = "id"
    page_size = api_settings.PAGE_SIZE


class NewestFirstCursorPagination(CursorPagination):
    """Keyset pages newest first (jobs, exports). The cursor holds the boundary row's created_at;
    rows sharing that instant are told apart by DRF's offset within it (ties then in -id order)."""

    ordering = ("-created_at", "-id")
    page_size = api_settings.PAGE_SIZE
