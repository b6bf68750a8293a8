"""Who may use the review workspace (its pages and the API routes the review page calls):
outsiders get 404 on every route (nothing changes), annotators cannot change project settings
(403), anonymous visitors get no data (pages go to the login page, the API answers 401 JSON),
and session writes need the CSRF token."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Annotation
from labeling.selectors.review import image_leases
from tests.labeling.review_helpers import add_annotation, add_images, annotation_url, call

pytestmark = pytest.mark.django_db


@pytest.fixture
def proposal(image) -> Annotation:
    return add_annotation(image, phrase="secret-phrase")


def routes(project, image, proposal) -> list[tuple[str, str, dict | None]]:
    """Every review route: (method, url, JSON body)."""
    pid, iid, aid = {"project_id": project.pk}, {"image_id": image.pk}, {"annotation_id": proposal.pk}
    cat = project.classes.first().pk
    return [
        ("get", reverse("review-next", kwargs=pid), None),
        ("post", reverse("review-next", kwargs=pid), None),
        ("get", reverse("image-review", kwargs=iid), None),
        ("post", reverse("api-image-lease", kwargs=iid), {}),
        ("get", reverse("image-previous", kwargs=iid), None),
        ("get", reverse("project-leases", kwargs=pid), None),
        ("get", reverse("api-image-annotations", kwargs=iid), None),
        ("post", reverse("api-image-annotations", kwargs=iid), {"class_id": cat, "box": [1, 1, 5, 5]}),
        ("get", reverse("api-annotation", kwargs=aid), None),
        ("patch", reverse("api-annotation", kwargs=aid), {"state": "accepted", "version": 1}),
        ("delete", reverse("api-annotation", kwargs=aid), {"version": 1}),
        (
            "post",
            reverse("api-image-annotation-states", kwargs=iid),
            {"updates": [{"id": proposal.pk, "version": 1, "state": "accepted"}]},
        ),
        ("post", reverse("api-image-submit", kwargs=iid), {}),
        ("post", reverse("api-image-skip", kwargs=iid), {}),
        ("post", reverse("api-project-threshold", kwargs=pid), {"box_threshold": 0.5}),
    ]


def send(client, method: str, url: str, body):
    if method == "get":
        return client.get(url)
    return call(client, method, url, body)


def snapshot(project, image, proposal) -> tuple:
    image.refresh_from_db()
    proposal.refresh_from_db()
    project.refresh_from_db()
    return (
        image.status,
        image.assignee_id,
        image.version,
        proposal.state,
        proposal.version,
        Annotation.objects.count(),
        project.box_threshold,
    )


def test_outsiders_get_404_on_every_review_route_and_change_nothing(
    client_for, outsider, project, image, proposal
):
    client = client_for(outsider)
    before = snapshot(project, image, proposal)
    for method, url, body in routes(project, image, proposal):
        response = send(client, method, url, body)
        assert response.status_code == 404, (method, url)
        assert b"secret-phrase" not in response.content
    assert snapshot(project, image, proposal) == before


def test_outsiders_get_json_404_from_the_api(client_for, outsider, project, image, proposal):
    response = call(
        client_for(outsider), "patch", annotation_url(proposal.pk), {"state": "accepted"}, version=1
    )
    assert response.status_code == 404
    assert response.json() == {"error": "No such annotation."}


def test_an_annotation_of_another_project_is_404_for_a_member_of_this_one(
    client_for, annotator, manager, project, proposal
):
    from labeling.services.projects import project_create

    other = project_create(user=manager, name="Other", classes=[{"name": "dog"}])
    (other_image,) = add_images(other, 1, start=100)
    foreign = add_annotation(other_image)
    client = client_for(annotator)
    for method in ("patch", "delete"):
        response = call(client, method, annotation_url(foreign.pk), {"state": "rejected"}, version=1)
        assert response.status_code == 404, method
    assert Annotation.objects.filter(pk=foreign.pk, state="proposed", version=1).exists()


def test_a_nonexistent_annotation_is_404(client_for, annotator, db):
    assert (
        call(
            client_for(annotator), "patch", annotation_url(999999), {"state": "accepted"}, version=1
        ).status_code
        == 404
    )


def test_annotators_cannot_save_thresholds_or_see_leases_or_settings(client_for, annotator, project):
    client = client_for(annotator)
    pid = {"project_id": project.pk}
    assert (
        call(client, "post", reverse("api-project-threshold", kwargs=pid), {"box_threshold": 0.5}).status_code
        == 403
    )
    assert client.get(reverse("project-leases", kwargs=pid)).status_code == 403
    assert client.get(reverse("project-edit", kwargs=pid)).status_code == 403
    assert client.get(reverse("project-members", kwargs=pid)).status_code == 403
    project.refresh_from_db()
    assert project.box_threshold == 0.35


def test_annotators_may_triage_draw_and_submit(client_for, annotator, project, image, proposal, task_calls):
    client = client_for(annotator)
    pid, iid = {"project_id": project.pk}, {"image_id": image.pk}
    aid = {"annotation_id": proposal.pk}
    # One expected answer per route, in the order routes() lists them.
    expected = {
        ("get", reverse("review-next", kwargs=pid)): 200,  # the queue page: takes nothing
        ("post", reverse("review-next", kwargs=pid)): 303,  # leases the image, opens it
        ("get", reverse("image-review", kwargs=iid)): 200,
        ("post", reverse("api-image-lease", kwargs=iid)): 200,  # the page's claim (its own lease)
        ("get", reverse("image-previous", kwargs=iid)): 302,  # to the review page of the previous image
        ("get", reverse("api-image-annotations", kwargs=iid)): 200,
        ("post", reverse("api-image-annotations", kwargs=iid)): 201,
        ("get", reverse("api-annotation", kwargs=aid)): 200,
        ("patch", reverse("api-annotation", kwargs=aid)): 200,
        ("delete", reverse("api-annotation", kwargs=aid)): 409,  # a model proposal: rejected, not deleted
        ("post", reverse("api-image-annotation-states", kwargs=iid)): 200,
        ("post", reverse("api-image-submit", kwargs=iid)): 200,
    }
    answered = {}
    for method, url, body in routes(project, image, proposal):
        if (method, url) in expected:  # not: the manager's threshold and leases, skip (after submit)
            answered[method, url] = send(client, method, url, body).status_code
    assert answered == expected


def test_anonymous_visitors_get_no_data(client, project, image, proposal):
    login = reverse("login")
    pages = {
        reverse("review-next", kwargs={"project_id": project.pk}),
        reverse("project-leases", kwargs={"project_id": project.pk}),
        reverse("image-review", kwargs={"image_id": image.pk}),
        reverse("image-previous", kwargs={"image_id": image.pk}),
    }
    before = snapshot(project, image, proposal)
    for method, url, body in routes(project, image, proposal):
        response = send(client, method, url, body)
        assert b"secret-phrase" not in response.content, url
        if url in pages:
            assert response.status_code == 302, url
            assert urlsplit(response["Location"]).path == login, url
        else:  # the API: 401, not a redirect a fetch() would follow
            assert response.status_code == 401, url
            assert response.json()["error"], url
            assert response["WWW-Authenticate"] == "Token", url
    assert snapshot(project, image, proposal) == before


def test_writes_need_the_csrf_token(annotator, image, proposal):
    client = Client(enforce_csrf_checks=True)
    client.force_login(annotator)
    client.get(reverse("project-detail", kwargs={"project_id": image.project_id}))  # sets the cookie
    token = client.cookies["csrftoken"].value
    url = annotation_url(proposal.pk)
    refused = call(client, "patch", url, {"state": "accepted"}, version=1)
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]
    assert (
        call(client, "patch", url, {"state": "accepted"}, version=1, HTTP_X_CSRFTOKEN=token).status_code
        == 200
    )


def test_a_lease_is_not_taken_by_an_outsider_opening_the_page(client_for, outsider, project, image):
    client = client_for(outsider)
    client.get(reverse("image-review", kwargs={"image_id": image.pk}))
    client.get(reverse("review-next", kwargs={"project_id": project.pk}))
    client.post(reverse("review-next", kwargs={"project_id": project.pk}))
    call(client, "post", reverse("api-image-lease", kwargs={"image_id": image.pk}), {})
    image.refresh_from_db()
    assert image.assignee_id is None
    assert image_leases(project=project) == []


# Leases only by POST (a link or an <img src> on any site must not take images) ---------------------


def get_routes(project, image, proposal) -> list[str]:
    """Every review route a GET reaches (the API's claim answers GET with 405)."""
    pid, iid = {"project_id": project.pk}, {"image_id": image.pk}
    return [
        reverse("review-next", kwargs=pid),
        reverse("image-review", kwargs=iid),
        reverse("image-previous", kwargs=iid),
        reverse("project-leases", kwargs=pid),
        reverse("api-image", kwargs=iid),
        reverse("api-image-lease", kwargs=iid),
        reverse("api-image-annotations", kwargs=iid),
        reverse("api-annotation", kwargs={"annotation_id": proposal.pk}),
    ]


def leases(project) -> list[tuple]:
    return list(project.images.order_by("pk").values_list("pk", "assignee_id", "lease_expires_at"))


@pytest.mark.parametrize("role", ["annotator", "manager"])
def test_no_get_of_a_review_route_leases_or_queues_anything(
    request, client_for, role, project, image, proposal, task_calls
):
    add_images(project, 3, start=10)  # more images to prefetch, were anything prefetched
    client = client_for(request.getfixturevalue(role))
    before = leases(project)
    answers = {url: client.get(url).status_code for url in get_routes(project, image, proposal)}
    assert answers[reverse("api-image-lease", kwargs={"image_id": image.pk})] == 405
    assert answers[reverse("image-review", kwargs={"image_id": image.pk})] == 200
    assert answers[reverse("review-next", kwargs={"project_id": project.pk})] == 200
    assert leases(project) == before
    assert all(holder is None for _, holder, _ in before)
    assert task_calls.calls == []


def cross_site_client(user) -> Client:
    """A logged-in browser that enforces CSRF, as on another site's page: no token, a foreign
    Origin / Referer (what an <img src> or a link from there sends)."""
    client = Client(
        enforce_csrf_checks=True,
        HTTP_SEC_FETCH_SITE="cross-site",
        HTTP_ORIGIN="https://evil.example",
        HTTP_REFERER="https://evil.example/page.html",
    )
    client.force_login(user)
    return client


def test_a_cross_site_get_cannot_take_a_lease(annotator, project, image, proposal, task_calls):
    client = cross_site_client(annotator)
    for url in get_routes(project, image, proposal):
        client.get(url)
    # The review page, loaded on its own, holds no lease: only its script's claim (a POST) would.
    assert client.get(reverse("image-review", kwargs={"image_id": image.pk})).status_code == 200
    assert leases(project) == [(image.pk, None, None)]
    assert task_calls.calls == []


def test_lease_posts_without_the_csrf_token_are_refused(annotator, project, image, task_calls):
    client = cross_site_client(annotator)
    take_next = reverse("review-next", kwargs={"project_id": project.pk})
    claim = reverse("api-image-lease", kwargs={"image_id": image.pk})
    assert client.post(take_next).status_code == 403
    refused = call(client, "post", claim, {})
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]
    assert leases(project) == [(image.pk, None, None)]
    assert task_calls.calls == []

    # The same browser on our own page: the token from the cookie, our origin.
    same_site = Client(enforce_csrf_checks=True)
    same_site.force_login(annotator)
    same_site.get(reverse("project-detail", kwargs={"project_id": project.pk}))  # sets the cookie
    token = same_site.cookies["csrftoken"].value
    taken = same_site.post(take_next, {"csrfmiddlewaretoken": token})
    assert taken.status_code == 303
    assert taken["Location"] == reverse("image-review", kwargs={"image_id": image.pk})
    assert call(same_site, "post", claim, {}, HTTP_X_CSRFTOKEN=token).status_code == 200
    assert leases(project)[0][1] == annotator.pk
