"""The API's two kinds of pages.

Lists whose total is cheap (projects, classes, members: a handful of rows per user or project)
page by number with a count: `?page=`, DRF's PageNumberPagination, the default in settings.
Lists that grow with the project (images, an image's annotations, jobs, exports) page by keyset:
`?cursor=` (opaque), with `next` / `previous` links and no count. Their page is one indexed range
read with a LIMIT, so the last page costs what the first does; the image list's per-image counts
(correlated subqueries) run for the page's rows only.

- ByIdCursorPagination (images, annotations): DRF's CursorPagination on the id, whose cursor
  must name an id.
- NewestFirstCursorPagination (jobs, exports): a true two-column keyset on (created_at, id),
  both values in the cursor and a row comparison for the filter, on the index (project,
  created_at, id); DRF's own keys on one column and tells ties apart by an offset capped at 1,000.

A cursor that does not decode (tampered, truncated, another list's) is a 404 "Invalid cursor"
with the reason, as DRF answers, never a 500. The project page's image grid pages by keyset too,
by hand (`selectors.images.image_page`): it is HTML, not DRF.
"""

from __future__ import annotations

import re
from base64 import b64decode, b64encode
from datetime import UTC, datetime, timedelta
from urllib import parse

from django.db.models import F
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param

NUMBERED = frozenset({"page"})  # the query parameters of a numbered list
KEYSET = frozenset({"cursor"})  # the query parameters of a keyset list


INVALID_CURSOR = "Invalid cursor: pass a next or previous link's cursor as it was given."


class ByIdCursorPagination(CursorPagination):
    """Keyset pages in id order (images, annotations): the cursor is the last id seen. A cursor
    whose position is not an id is a 404 "Invalid cursor" like an undecodable one."""

    ordering = "id"
    page_size = api_settings.PAGE_SIZE
    invalid_cursor_message = INVALID_CURSOR

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        position = None if cursor is None else cursor.position
        if position is not None and (not _ID.fullmatch(position) or int(position) > _MAX_ID):
            raise NotFound(self.invalid_cursor_message)
        return cursor


class NewestFirstCursorPagination(CursorPagination):
    """Keyset pages newest first (jobs, exports) on two columns, (created_at, id): the cursor holds
    both values of the page's boundary row, and a page is the rows strictly past it in that
    order, `(created_at, id) < (c, i)` going on (`created_at < c OR (created_at = c AND id < i)`)
    and `> (c, i)` coming back, read in the reverse order and turned round: one range read with a
    LIMIT on the index (project, created_at, id) either way. Any number of rows sharing one
    instant page like any others (DRF's CursorPagination keys on one column and tells ties apart
    by an offset, capped at 1,000).

    The cursor is DRF's kind of token (base64 of a query string): `t` the boundary's created_at
    in microseconds since 1970 (UTC), `i` its id, `r=1` for a previous page. One that does not
    decode to that is a 404 "Invalid cursor" (the reason), as DRF answers."""

    ordering = ("-created_at", "-id")
    page_size = api_settings.PAGE_SIZE
    invalid_cursor_message = INVALID_CURSOR

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        self.cursor = self.decode_cursor(request)
        reverse, position = (False, None) if self.cursor is None else self.cursor
        if position is None:
            rows = queryset.order_by("-created_at", "-id")
        elif reverse:  # the rows before the boundary (newer ones), the oldest of them first
            rows = queryset.filter(_beyond(*position, newer=True)).order_by("created_at", "id")
        else:
            rows = queryset.filter(_beyond(*position, newer=False)).order_by("-created_at", "-id")
        results = list(rows[: self.page_size + 1])
        more = len(results) > self.page_size
        self.page = results[: self.page_size]
        if reverse:
            self.page.reverse()
            self.has_previous, self.has_next = more, True
        else:
            self.has_previous, self.has_next = position is not None, more
        self.position = position
        self.display_page_controls = self.has_previous or self.has_next
        return self.page

    def get_next_link(self):
        if not self.has_next:
            return None
        position = _position(self.page[-1]) if self.page else self.position
        return self.encode_cursor((False, position))

    def get_previous_link(self):
        if not self.has_previous:
            return None
        position = _position(self.page[0]) if self.page else self.position
        return self.encode_cursor((True, position))

    def decode_cursor(self, request) -> tuple[bool, tuple[datetime, int]] | None:
        """(reverse, (created_at, id)) from the request's cursor; None without one."""
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            tokens = parse.parse_qs(
                b64decode(encoded.encode("ascii"), validate=True).decode("ascii"), strict_parsing=True
            )
            (micros,), (pk,), (reverse,) = tokens.pop("t"), tokens.pop("i"), tokens.pop("r", ["0"])
            if (
                tokens
                or not _INTEGER.fullmatch(micros)
                or not _INTEGER.fullmatch(pk)
                or reverse not in ("0", "1")
            ):
                raise ValueError(encoded)
            created_at = _EPOCH + timedelta(microseconds=int(micros))
            if not 0 < int(pk) <= _MAX_ID:
                raise ValueError(pk)
        except (KeyError, TypeError, ValueError, OverflowError):
            raise NotFound(self.invalid_cursor_message) from None
        return reverse == "1", (created_at, int(pk))

    def encode_cursor(self, cursor: tuple[bool, tuple[datetime, int]]) -> str:
        reverse, (created_at, pk) = cursor
        tokens = {"t": (created_at - _EPOCH) // timedelta(microseconds=1), "i": pk}
        if reverse:
            tokens["r"] = 1
        encoded = b64encode(parse.urlencode(tokens).encode("ascii")).decode("ascii")
        return replace_query_param(self.base_url, self.cursor_query_param, encoded)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ID = 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_ID = re.compile(r"[0-9]{1,19}")


def _beyond(created_at: datetime, pk: int, *, newer: bool) -> TupleGreaterThan | TupleLessThan:
    """The rows past (created_at, pk): the row comparison `(created_at, id) > (c, i)` when newer,
    `<` otherwise, i.e. `created_at > c OR (created_at = c AND id > i)` (Django writes that form
    where the database has no row values). PostgreSQL reads a row comparison as the index's
    range condition on (project, created_at, id), both ways; the OR form it planned as a bitmap
    scan of every newer row plus a sort for a previous page."""
    lookup = TupleGreaterThan if newer else TupleLessThan
    return lookup(Tuple(F("created_at"), F("id")), (created_at, pk))


def _position(row) -> tuple[datetime, int]:
    return row.created_at, row.pk
