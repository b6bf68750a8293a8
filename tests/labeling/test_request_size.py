"""Request size limits (issue 11, point 2): labeling.middleware.RequestSizeLimitMiddleware answers
413 from the declared Content-Length before anything reads the body (CSRF included), counts a
chunked body and stops at the limit, with a limit per route kind (uploads, imports, the rest)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.middleware import RequestSizeLimitMiddleware
from tests.conftest import PASSWORD, image_bytes
from webapp.wsgi import application

GB2 = 2 * 1024**3


class Unreadable(io.RawIOBase):
    """A wsgi.input that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = readinto = read


class Counted(io.BytesIO):
    """A de-chunked body (what gunicorn gives for Transfer-Encoding: chunked): counts what is read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


@pytest.fixture
def wsgi(db):
    """Calls of the WSGI application that keep the test's connection (as Django's test Client)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield wsgi_call
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def wsgi_call(path: str, *, method: str = "POST", **environ) -> tuple[int, dict, bytes]:
    """Call the WSGI application itself (every middleware, no test client)."""
    base = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **environ,
    }
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(application(base, start_response))
    return answer["status"], answer["headers"], body


ROUTES = {
    "page upload": ("/projects/1/upload/", "multipart/form-data; boundary=x"),
    "API upload": ("/api/v1/projects/1/images/", "multipart/form-data; boundary=x"),
    "page import": ("/projects/1/import/", "multipart/form-data; boundary=x"),
    "API import": ("/api/v1/projects/1/imports/", "multipart/form-data; boundary=x"),
    "API JSON": ("/api/v1/images/1/annotations/", "application/json"),
    "page form": ("/projects/1/edit/", "application/x-www-form-urlencoded"),
    "login": ("/accounts/login/", "application/x-www-form-urlencoded"),
    "no such route": ("/nowhere/", "application/octet-stream"),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_declared_2_gb_body_gets_413_without_being_read(wsgi, route):
    path, content_type = ROUTES[route]
    status, headers, body = wsgi(
        path, CONTENT_LENGTH=str(GB2), CONTENT_TYPE=content_type, **{"wsgi.input": Unreadable()}
    )
    assert status == 413
    if path.startswith("/api/"):
        assert headers["Content-Type"] == "application/json"
        assert "the limit is" in json.loads(body)["error"]
    else:
        assert headers["Content-Type"].startswith("text/plain")
        assert b"the limit is" in body


@pytest.mark.parametrize("route", ["API JSON", "page form", "API upload"])
def test_a_chunked_body_over_the_limit_gets_413_and_is_read_only_to_the_limit(wsgi, route, settings):
    settings.LABELGPT_MAX_REQUEST_BYTES = settings.LABELGPT_MAX_UPLOAD_BYTES = 100_000
    path, content_type = ROUTES[route]
    stream = Counted(b"x" * 10_000_000)
    status, _, body = wsgi(
        path,
        CONTENT_TYPE=content_type,
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": stream, "wsgi.input_terminated": True},
    )
    assert status == 413
    assert b"more than 100,000 bytes" in body
    assert stream.taken <= 100_001


@pytest.mark.django_db
def test_a_chunked_body_under_the_limit_is_read_as_the_request_body(manager):
    """Counted, then given to the view with its size as Content-Length: a token is issued."""
    data = json.dumps({"username": "manny", "password": PASSWORD}).encode()
    response = APIClient().generic(
        "POST",
        reverse("api-token"),
        content_type="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": Counted(data), "wsgi.input_terminated": True},
    )
    assert response.status_code == 200, response.content
    assert response.json()["token"]


@pytest.mark.django_db
def test_the_page_upload_gets_413_before_csrf_runs(manager, project, settings):
    settings.LABELGPT_MAX_UPLOAD_BYTES = 2000
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    url = reverse("project-upload", args=[project.pk])
    big = io.BytesIO(image_bytes("BMP", size=(100, 100)))
    big.name = "big.bmp"
    response = client.post(url, {"files": [big]})
    assert response.status_code == 413  # not CSRF's 403: the body was never parsed
    assert response.content.decode().startswith("The upload is") and "per upload" in response.content.decode()
    assert not project.images.exists()
    small = io.BytesIO(image_bytes("PNG", size=(4, 4)))
    small.name = "small.png"
    assert client.post(url, {"files": [small]}).status_code == 403  # CSRF does run after it


LIMITS = {
    "LABELGPT_MAX_UPLOAD_BYTES": 3000,
    "LABELGPT_MAX_IMPORT_BYTES": 2000,
    "LABELGPT_MAX_REQUEST_BYTES": 1000,
}


@pytest.mark.parametrize(
    ("route", "limit"),
    [
        ("page upload", 3000),
        ("API upload", 3000),
        ("page import", 2000),
        ("API import", 2000),
        ("API JSON", 1000),
        ("page form", 1000),
        ("login", 1000),
        ("no such route", 1000),
    ],
)
def test_each_route_kind_has_its_limit(settings, route, limit):
    for name, value in LIMITS.items():
        setattr(settings, name, value)
    path, content_type = ROUTES[route]
    passed = []
    middleware = RequestSizeLimitMiddleware(lambda request: passed.append(request) or "view")
    factory = RequestFactory()
    at_limit = factory.post(path, b"x" * limit, content_type=content_type)
    assert middleware(at_limit) == "view"
    over = factory.post(path, b"x" * (limit + 1), content_type=content_type)
    response = middleware(over)
    assert response.status_code == 413 and len(passed) == 1
    assert f"the limit is {limit:,} bytes" in response.content.decode()


def test_a_json_request_outside_the_api_gets_a_json_413(settings):
    settings.LABELGPT_MAX_REQUEST_BYTES = 10
    request = RequestFactory().post("/projects/1/edit/", b"{}" * 10, content_type="application/json")
    response = RequestSizeLimitMiddleware(lambda request: None)(request)
    assert response.status_code == 413
    assert json.loads(response.content) == {"error": "The request body is 20 bytes; the limit is 10 bytes."}


def test_the_upload_message_is_the_upload_views_one(settings):
    settings.LABELGPT_MAX_UPLOAD_BYTES = 1024**3
    request = RequestFactory().post(
        "/projects/1/upload/", b"", content_type="multipart/form-data; boundary=x", CONTENT_LENGTH=str(GB2)
    )
    response = RequestSizeLimitMiddleware(lambda request: None)(request)
    assert response.content.decode() == (
        "The upload is 2147 MB; the limit is 1074 MB per upload. Send fewer files at once."
    )
