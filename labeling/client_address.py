"""The client's address, one definition for the failed-login lockout (django-axes:
settings.AXES_CLIENT_IP_CALLABLE) and the API's throttles (labeling.api.views.ClientRateThrottle).

X-Forwarded-For is believed only behind settings.LABELGPT_TRUSTED_PROXIES reverse proxies, each of
which appends the address it was called from: the client is then the entry that many places from
the right (DRF's NUM_PROXIES rule); whatever a client wrote to the left of it is ignored. With no
trusted proxy (the default) the address is the socket's peer, REMOTE_ADDR, whatever the headers say.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, or the trusted proxies' view of the client (an entry that is not an IP address,
    which only a client could have written when fewer proxies stand in front than configured,
    falls back to REMOTE_ADDR)."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.LABELGPT_TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",")]
        try:
            return str(ipaddress.ip_address(hops[-min(proxies, len(hops))]))
        except ValueError:
            pass
    return remote
