"""Content-Security-Policy: enforced on every HTML page, strict for scripts, and every page
(ours and the Django admin's) keeps working under it: no inline script, no inline event
handler, no javascript: URL anywhere."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from labeling.models import Image
from tests.labeling.review_helpers import add_annotation, add_images

pytestmark = pytest.mark.django_db

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.IGNORECASE | re.DOTALL)
EVENT_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)


HEADER = "Content-Security-Policy"
# Sources that let a script run that is not a file of this site.
UNSAFE_SCRIPT_SOURCES = {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'wasm-unsafe-eval'", "*"}


def parse_policy(header: str) -> dict[str, tuple[str, ...]]:
    """Directive name → its sources, as a browser reads a serialized policy (CSP Level 3, "parse a
    serialized CSP"): split on ";", names ASCII-lowercased, empty parts ignored. A browser keeps the
    first of a repeated directive and ignores the rest; here a repeat is an error, since the policy
    would not be what it reads like."""
    policy: dict[str, tuple[str, ...]] = {}
    for part in header.split(";"):
        tokens = part.split()
        if not tokens:
            continue
        name, sources = tokens[0].lower(), tuple(tokens[1:])
        if name in policy:
            raise ValueError(f"directive {name} given twice in {header!r}")
        policy[name] = sources
    return policy


def effective(policy: dict[str, tuple[str, ...]], directive: str) -> tuple[str, ...] | None:
    """The sources that govern `directive`: its own, else default-src's (the fetch directives fall
    back to it; script-src-elem / -attr fall back to script-src first). None: nothing restricts it."""
    chain = {
        "script-src-elem": ("script-src-elem", "script-src", "default-src"),
        "script-src-attr": ("script-src-attr", "script-src", "default-src"),
    }.get(directive, (directive, "default-src"))
    for name in chain:
        if name in policy:
            return policy[name]
    return None


def policy_problems(policy: dict[str, tuple[str, ...]]) -> list[str]:
    """What is wrong with a policy for this app (an empty list: nothing)."""
    problems = []

    def want(directive: str, allowed: set[str], *, exactly: bool = False) -> None:
        sources = effective(policy, directive)
        if sources is None:
            problems.append(f"{directive}: not restricted (no {directive}, no default-src)")
        elif not sources or not set(sources) <= allowed or (exactly and set(sources) != allowed):
            problems.append(
                f"{directive}: {' '.join(sources) or '(empty)'}; want {' '.join(sorted(allowed))}"
            )

    # Scripts: files of this site only (no inline code, no eval, no other host, no data: URL).
    for directive in ("script-src", "script-src-elem", "script-src-attr"):
        sources = effective(policy, directive) or ()
        if unsafe := sorted(set(sources) & UNSAFE_SCRIPT_SOURCES):
            problems.append(f"{directive} allows {' '.join(unsafe)}")
        want(directive, {"'self'"}, exactly=True)
    if "script-src" not in policy:
        problems.append("script-src: missing (left to default-src)")
    want("default-src", {"'self'"}, exactly=True)
    want("object-src", {"'none'"}, exactly=True)  # no plugins
    want("connect-src", {"'self'"}, exactly=True)  # fetch / XHR to this site only
    want("img-src", {"'self'", "data:", "blob:"})  # the canvas draws masks through data: / blob:
    want("style-src", {"'self'", "'unsafe-inline'"})  # inline styles: class colours, htmx
    # Not fetch directives: no fallback to default-src, each must be given.
    for directive, allowed in (
        ("base-uri", {"'self'"}),
        ("form-action", {"'self'"}),
        ("frame-ancestors", {"'none'"}),  # no framing at all, like X-Frame-Options: DENY
    ):
        if policy.get(directive) != tuple(allowed):
            problems.append(f"{directive}: {policy.get(directive)}; want {' '.join(allowed)}")
    return problems


def sent_policy(response) -> dict[str, tuple[str, ...]]:
    """The enforced policy of a response (a report-only policy enforces nothing: none of that)."""
    assert f"{HEADER}-Report-Only" not in response, "report-only enforces nothing"
    assert HEADER in response, f"no {HEADER} header ({response.status_code})"
    return parse_policy(response[HEADER])


def assert_strict_policy(response, where: str = "") -> dict[str, tuple[str, ...]]:
    policy = sent_policy(response)
    assert policy_problems(policy) == [], where
    assert policy["script-src"] == ("'self'",), where
    return policy


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


def test_the_policy_sent_is_strict_for_scripts_plugins_framing_and_forms(client):
    policy = assert_strict_policy(client.get(reverse("login")))

    assert policy["script-src"] == ("'self'",)  # no 'unsafe-inline', no 'unsafe-eval', no hosts
    assert policy["object-src"] == ("'none'",)
    assert policy["frame-ancestors"] == ("'none'",)
    assert policy["base-uri"] == ("'self'",)
    assert policy["form-action"] == ("'self'",)


def test_every_page_is_sent_with_the_same_enforced_policy(client_for, admin_user, project, image, task_calls):
    client = client_for(admin_user)
    policies = {}
    for url in our_pages(project, image):
        response = client.get(url)
        assert response.status_code == 200, url
        policies[url] = assert_strict_policy(response, url)
    assert len({tuple(sorted(p.items())) for p in policies.values()}) == 1, policies


def test_error_pages_and_the_login_page_have_the_policy_too(client, client_for, outsider, project):
    assert_strict_policy(client.get(reverse("login")), "login")
    response = client_for(outsider).get(reverse("project-detail", kwargs={"project_id": project.pk}))
    assert response.status_code == 404
    assert_strict_policy(response, "404")


def test_the_review_queue_page_has_the_policy(client_for, annotator, project):
    response = client_for(annotator).get(reverse("review-next", kwargs={"project_id": project.pk}))
    assert response.status_code == 200
    assert_strict_policy(response)
    assert inline_script_problems(response.content.decode()) == []


def test_the_api_docs_page_has_the_policy_and_no_inline_script(client_for, manager):
    response = client_for(manager).get(reverse("api-docs"))
    assert response.status_code == 200
    assert_strict_policy(response)
    assert inline_script_problems(response.content.decode()) == []


STRICT = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def test_the_parser_reads_directives_like_a_browser():
    assert parse_policy(" Script-Src 'self' ;; object-src 'none';") == {
        "script-src": ("'self'",),
        "object-src": ("'none'",),
    }
    with pytest.raises(ValueError, match="given twice"):
        parse_policy("script-src 'self'; script-src 'unsafe-inline'")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("script-src 'self'", "script-src 'self' 'unsafe-inline'"), "script-src allows 'unsafe-inline'"),
        (("script-src 'self'", "script-src 'self' 'unsafe-eval'"), "script-src allows 'unsafe-eval'"),
        (("script-src 'self'", "script-src 'self' https://cdn.example"), "script-src: 'self' https://"),
        (("script-src 'self'", "script-src 'self'; script-src-attr 'unsafe-inline'"), "script-src-attr"),
        (("script-src 'self'; ", ""), "script-src: missing"),
        (("object-src 'none'; ", ""), "object-src: 'self'"),
        (("default-src 'self'; ", ""), "default-src: not restricted"),
        (("frame-ancestors 'none'", "frame-ancestors 'self'"), "frame-ancestors"),
        (("; frame-ancestors 'none'", ""), "frame-ancestors: None"),
        (("base-uri 'self'; ", ""), "base-uri: None"),
        (("form-action 'self'", "form-action *"), "form-action"),
        (("connect-src 'self'", "connect-src *"), "connect-src: *"),
        (("img-src 'self' data: blob:", "img-src *"), "img-src: *"),
    ],
)
def test_the_checker_finds_each_weakened_policy(change, problem):
    assert policy_problems(parse_policy(STRICT)) == []
    weakened = STRICT.replace(*change)
    assert weakened != STRICT
    assert any(p.startswith(problem) for p in policy_problems(parse_policy(weakened))), policy_problems(
        parse_policy(weakened)
    )


def test_json_answers_are_not_pages(client_for, annotator, image):
    response = client_for(annotator).get(reverse("api-image-annotations", kwargs={"image_id": image.pk}))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert HEADER not in response


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
    assert_strict_policy(response, url)
    assert inline_script_problems(response.content.decode()) == []


def test_the_admin_change_page_works_under_the_policy(client_for, admin_user, project):
    response = client_for(admin_user).get(f"/admin/labeling/project/{project.pk}/change/")
    assert response.status_code == 200
    assert_strict_policy(response)
    assert inline_script_problems(response.content.decode()) == []
