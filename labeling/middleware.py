"""Content-Security-Policy on every HTML page (enforced, not report-only).

Scripts come from this site only (`script-src 'self'`: no inline <script>, no event-handler
attributes, no eval), so a class name like `"><img src=x onerror=alert(1)>` that slipped past
escaping still could not run. Inline *styles* stay allowed: the templates set CSS variables in
`style` attributes (class colors) and htmx adds its indicator styles. Images may be data: or
blob: URLs (the canvas draws masks through them); fetch / XHR go to this site only.

Django 6 has this built in (django.middleware.csp); on 5.2 it is this small middleware.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

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
