"""The request size limits (RequestSizeLimitMiddleware), the Content-Security-Policy on every
HTML page (ContentSecurityPolicyMiddleware), and, for benchmarks only, the number of SQL queries
of each request in a response header (QueryCountHeaderMiddleware, LABELGPT_QUERY_COUNT_HEADER).

Content-Security-Policy: enforced, not report-only.

Scripts come from this site only (`script-src 'self'`: no inline <script>, no event-handler
attributes, no eval), so a class name like `"><img src=x onerror=alert(1)>` that slipped past
escaping still could not run. Inline *styles* stay allowed: the templates set CSS variables in
`style` attributes (class colors) and htmx adds its indicator styles. Images may be data: or
blob: URLs (the canvas draws masks through them); fetch / XHR go to this site only.

Django 6 has this built in (django.middleware.csp); on 5.2 it is this small middleware.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "style-src 'self' 'unsafe-inline'",
        "script-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def content_security_policy() -> str:
    """The policy sent: LABELGPT_CONTENT_SECURITY_POLICY when set, else the strict default above."""
    return getattr(settings, "LABELGPT_CONTENT_SECURITY_POLICY", "") or CONTENT_SECURITY_POLICY


class ContentSecurityPolicyMiddleware:
    header = "Content-Security-Policy"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if content_type.startswith("text/html") and self.header not in response:
            response[self.header] = content_security_policy()
        return response


# Request size ------------------------------------------------------------------------------------

# Routes (URL names) whose bodies are image uploads or dataset imports; every other route takes
# LABELGPT_MAX_REQUEST_BYTES (JSON, forms).
UPLOAD_ROUTES = frozenset({"project-upload", "api-project-images"})
IMPORT_ROUTES = frozenset({"project-import", "api-project-imports"})
_CHUNK = 64 * 1024


def request_size_limit(request: HttpRequest) -> tuple[str, int]:
    """(kind, largest body in bytes) of the request's route: "upload", "import" or "request"."""
    try:
        name = resolve(request.path_info).url_name
    except Resolver404:
        name = None
    if name in UPLOAD_ROUTES:
        return "upload", settings.LABELGPT_MAX_UPLOAD_BYTES
    if name in IMPORT_ROUTES:
        return "import", settings.LABELGPT_MAX_IMPORT_BYTES
    return "request", settings.LABELGPT_MAX_REQUEST_BYTES


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size:,} bytes"


def too_large_response(request: HttpRequest, kind: str, limit: int, size: int | None) -> HttpResponse:
    """413 saying the limit: JSON {"error": ...} for the API and JSON requests, text otherwise.
    `size` is the declared size; None when the body was counted and stopped past the limit."""
    what = {"upload": "The upload", "import": "The file"}.get(kind, "The request body")
    sent = _megabytes(size) if size is not None else f"more than {_megabytes(limit)}"
    message = f"{what} is {sent}; the limit is {_megabytes(limit)}"
    message += {
        "upload": " per upload. Send fewer files at once.",
        "import": " per import.",
    }.get(kind, ".")
    wants_json = (
        request.path_info.startswith("/api/")
        or request.content_type == "application/json"
        or "application/json" in request.headers.get("Accept", "")
    )
    if wants_json:
        return JsonResponse({"error": message}, status=413)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


class RequestSizeLimitMiddleware:
    """413 for a body over its route's limit (request_size_limit), before anything reads it: it
    comes before CsrfViewMiddleware (which parses a form's body) in MIDDLEWARE.

    A declared Content-Length is checked as it is (the body is not read). A body without one
    (Transfer-Encoding: chunked, which the WSGI server de-chunks when it sets
    wsgi.input_terminated) is counted as it is read into a temporary file (memory, then disk past
    FILE_UPLOAD_MAX_MEMORY_SIZE), stopping at the limit; under the limit the request goes on with
    that file as its body and its size as its Content-Length. Without wsgi.input_terminated a
    body with no Content-Length is never read (Django reads CONTENT_LENGTH bytes: none). Under
    ASGI, Django has spooled the body before any middleware: its size is checked the same way.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        kind, limit = request_size_limit(request)
        declared = request.META.get("CONTENT_LENGTH")
        if declared:
            try:
                size = int(declared)
            except ValueError:
                size = 0  # as Django reads it: no body
            if size > limit:
                return too_large_response(request, kind, limit, size)
            return self.get_response(request)
        stream = getattr(request, "_stream", None)
        if hasattr(stream, "seekable") and stream.seekable():  # ASGI: spooled already
            size = stream.seek(0, 2)
            stream.seek(0)
            if size > limit:
                return too_large_response(request, kind, limit, size)
        elif request.META.get("wsgi.input_terminated") and request.META.get("HTTP_TRANSFER_ENCODING"):
            body = self._counted_body(request.META["wsgi.input"], limit)
            if body is None:
                return too_large_response(request, kind, limit, None)
            size = body.seek(0, 2)
            body.seek(0)
            request.META["CONTENT_LENGTH"] = str(size)
            request._stream = LimitedStream(body, size)
        return self.get_response(request)

    @staticmethod
    def _counted_body(source, limit: int):
        """The body in a temporary file, or None as soon as it passes `limit` bytes."""
        body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115 (the request keeps it open)
        total = 0
        while chunk := source.read(min(_CHUNK, limit + 1 - total)):
            total += len(chunk)
            if total > limit:
                body.close()
                return None
            body.write(chunk)
        return body


# Query count (benchmarks) --------------------------------------------------------------------------


class QueryCountHeaderMiddleware:
    """Puts the number of SQL queries the request ran (every database connection, the session's
    and the user's included) in an `X-Query-Count` response header. Installed first in MIDDLEWARE
    only when LABELGPT_QUERY_COUNT_HEADER is on (bench/scale.py turns it on for its own server):
    it tells the outside how much work a request did, which no production server should."""

    header = "X-Query-Count"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        count = 0

        def counted(execute, sql, params, many, context):
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with ExitStack() as stack:
            for alias in connections:
                stack.enter_context(connections[alias].execute_wrapper(counted))
            response = self.get_response(request)
        response[self.header] = str(count)
        return response
