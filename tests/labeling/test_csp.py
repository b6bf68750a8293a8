"""Content-Security-Policy: enforced on every HTML page, strict for scripts, and every page
(ours and the Django admin's) keeps working under it: no inline script, no inline event
handler, no javascript: URL anywhere."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from labeling.middleware import CONTENT_SECURITY_POLICY
from labeling.models import Image
from tests.labeling.review_helpers import add_annotation, add_images

pytestmark = pytest.mark.django_db

POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.IGNORECASE | re.DOTALL)
EVENT_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def inline_script_problems(html: str) -> list[str]:
    """What a `script-src 'self'` policy would block on this page."""
    problems = []
    for attributes, body in SCRIPT_TAG.findall(html):
        data_block = re.search(r'type="application/(ld\+)?json"', attributes)
        if "src=" not in attributes and not data_block:
            problems.append(f"inline script: {body.strip()[:80]!r}")
        elif "src=" in attributes and body.strip():
            problems.append(f"script with both src and a body: {attributes[:80]!r}")
    problems += [f"event handler attribute: {m.group(0)[:80]!r}" for m in EVENT_HANDLER.finditer(html)]
    if re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", html, re.IGNORECASE):
        problems.append("javascript: URL")
    return problems


@pytest.fixture
def image(project) -> Image:
    (image,) = add_images(project, 1)
    add_annotation(image)
    return image


def our_pages(project, image) -> list[str]:
    return [
        reverse("project-list"),
        reverse("project-create"),
        reverse("project-detail", kwargs={"project_id": project.pk}),
        reverse("project-edit", kwargs={"project_id": project.pk}),
        reverse("project-members", kwargs={"project_id": project.pk}),
        reverse("image-review", kwargs={"image_id": image.pk}),
    ]


def test_the_policy_is_the_strict_one():
    assert CONTENT_SECURITY_POLICY == POLICY
    parsed = directives(POLICY)
    assert parsed["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no hosts
    assert parsed["object-src"] == ["'none'"]
    assert parsed["frame-ancestors"] == ["'none'"]


def test_every_page_is_sent_with_the_policy_enforced(client_for, admin_user, project, image, task_calls):
    client = client_for(admin_user)
    for url in our_pages(project, image):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Security-Policy"] == POLICY, url
        assert "Content-Security-Policy-Report-Only" not in response, url


def test_error_pages_and_the_login_page_have_the_policy_too(client, client_for, outsider, project):
    assert client.get(reverse("login"))["Content-Security-Policy"] == POLICY
    response = client_for(outsider).get(reverse("project-detail", kwargs={"project_id": project.pk}))
    assert response.status_code == 404
    assert response["Content-Security-Policy"] == POLICY


def test_the_review_done_page_has_the_policy(client_for, annotator, project):
    response = client_for(annotator).get(reverse("review-next", kwargs={"project_id": project.pk}))
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == POLICY
    assert inline_script_problems(response.content.decode()) == []


def test_json_answers_are_not_pages(client_for, annotator, image):
    response = client_for(annotator).get(reverse("api-image-annotations", kwargs={"image_id": image.pk}))
    assert response["Content-Type"] == "application/json"
    assert "Content-Security-Policy" not in response


def test_our_pages_have_no_inline_script(client_for, admin_user, project, image, task_calls):
    client = client_for(admin_user)
    for url in our_pages(project, image):
        html = client.get(url).content.decode()
        assert "<script" in html, url  # htmx at least: the check below looks at real tags
        assert inline_script_problems(html) == [], url


def test_htmx_comes_from_a_script_file(client_for, annotator, project):
    html = client_for(annotator).get(reverse("project-list")).content.decode()
    assert re.search(r'<script src="/static/django_htmx/htmx-2[^"]*\.js" defer></script>', html)


def test_the_checker_sees_what_the_policy_blocks():
    assert inline_script_problems("<script>alert(1)</script>")
    assert inline_script_problems('<img src=x onerror="alert(1)">')
    assert inline_script_problems('<a href="javascript:alert(1)">x</a>')
    assert not inline_script_problems('<script src="/static/a.js" defer></script>')
    assert not inline_script_problems('<script id="d" type="application/json">{"a": 1}</script>')


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/labeling/project/",
        "/admin/labeling/image/",
        "/admin/auth/user/",
        "/admin/auth/user/add/",
        "/admin/labeling/project/add/",
    ],
)
def test_the_admin_works_under_the_policy(client_for, admin_user, project, image, url):
    """The Django admin uses script files only (its data goes through json_script / data-*
    attributes), so `script-src 'self'` does not break it."""
    response = client_for(admin_user).get(url)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == POLICY
    assert inline_script_problems(response.content.decode()) == []


def test_the_admin_change_page_works_under_the_policy(client_for, admin_user, project):
    response = client_for(admin_user).get(f"/admin/labeling/project/{project.pk}/change/")
    assert response.status_code == 200
    assert inline_script_problems(response.content.decode()) == []
