"""The REST API's rules beyond the role matrix: tokens and throttling, optimistic concurrency,
strict input, filters, scoping of lists, constant query counts, CSRF, the docs page."""

from __future__ import annotations

import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import Annotation, Export, Image, PrelabelJob
from labeling.services.projects import label_class_create, project_create
from tests.conftest import PASSWORD, image_bytes, plain_images
from tests.labeling.api_helpers import snapshot

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("task_calls", "clear_throttles")]

V = "/api/v1"


# Tokens and throttling ---------------------------------------------------------------------------


def test_a_token_is_obtained_used_and_revoked(manager):
    client = APIClient()
    response = client.post(f"{V}/auth/token/", {"username": "manny", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    key = response.json()["token"]
    assert Token.objects.get(user=manager).key == key
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(f"{V}/projects/").status_code == 200
    assert client.delete(f"{V}/auth/token/").status_code == 204
    assert not Token.objects.filter(user=manager).exists()
    assert client.get(f"{V}/projects/").status_code == 401


def test_a_wrong_password_gets_no_token(manager):
    response = APIClient().post(f"{V}/auth/token/", {"username": "manny", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert not Token.objects.exists()


def test_the_token_endpoint_is_throttled_after_ten_tries(manager, settings):
    settings.AXES_FAILURE_LIMIT = 100  # the throttle alone (the lockout: tests/labeling/test_auth_limits.py)
    client = APIClient()
    codes = [
        client.post(f"{V}/auth/token/", {"username": "manny", "password": "guess"}, format="json").status_code
        for _ in range(11)
    ]
    assert codes == [400] * 10 + [429]
    right = client.post(f"{V}/auth/token/", {"username": "manny", "password": PASSWORD}, format="json")
    assert right.status_code == 429  # even the right password waits
    assert not Token.objects.exists()


def test_session_writes_need_the_csrf_token(manager, world):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(manager)
    assert client.get(f"{V}/projects/").status_code == 200
    response = client.patch(f"{V}/projects/{world.project.pk}/", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    world.project.refresh_from_db()
    assert world.project.name == "Kitchen"


# Annotations: versions, triage, bulk -------------------------------------------------------------


def test_a_stale_patch_answers_412_with_the_current_annotation(api_for, world):
    client = api_for("annotator")
    url = f"{V}/annotations/{world.proposal.pk}/"
    first = client.patch(url, {"box": [2, 2, 12, 12]}, format="json", HTTP_IF_MATCH='"1"')
    assert first.status_code == 200
    assert first["ETag"] == '"2"'
    stale = client.patch(url, {"state": "rejected"}, format="json", HTTP_IF_MATCH='"1"')
    assert stale.status_code == 412
    assert stale.json()["current"]["version"] == 2
    assert stale.json()["current"]["box"] == [2, 2, 12, 12]
    world.proposal.refresh_from_db()
    assert world.proposal.state == Annotation.State.PROPOSED
    assert world.proposal.original_box == [1, 1, 10, 10]


def test_a_patch_without_a_version_answers_428(api_for, world):
    response = api_for("annotator").patch(
        f"{V}/annotations/{world.proposal.pk}/", {"state": "accepted"}, format="json"
    )
    assert response.status_code == 428


def test_accept_and_reject_take_the_version_in_the_body(api_for, world):
    client = api_for("annotator")
    accepted = client.post(f"{V}/annotations/{world.proposal.pk}/accept/", {"version": 1}, format="json")
    assert accepted.status_code == 200
    assert (accepted.json()["state"], accepted.json()["version"]) == ("accepted", 2)
    stale = client.post(f"{V}/annotations/{world.proposal.pk}/reject/", {"version": 1}, format="json")
    assert stale.status_code == 412
    rejected = client.post(f"{V}/annotations/{world.proposal.pk}/reject/", {"version": 2}, format="json")
    assert rejected.json()["state"] == "rejected"


def test_accept_above_accepts_only_proposals_at_or_above_the_score(api_for, world):
    low = Annotation.objects.create(
        image=world.image, label_class=world.label_class, x=1, y=1, w=3, h=3, score=0.3,
        source=Annotation.Source.MODEL,
    )  # fmt: skip
    response = api_for("annotator").post(
        f"{V}/images/{world.image.pk}/annotations/accept-above/", {"min_score": 0.8}, format="json"
    )
    assert response.status_code == 200
    assert [a["id"] for a in response.json()["annotations"]] == [world.proposal.pk]
    states = dict(Annotation.objects.values_list("pk", "state"))
    assert states[world.proposal.pk] == "accepted"
    assert states[low.pk] == "proposed"


def test_a_class_of_another_project_is_refused(api_for, world, foreign):
    response = api_for("manager").post(
        f"{V}/images/{world.image.pk}/annotations/",
        {"class_id": foreign.label_class.pk, "box": [1, 1, 2, 2]},
        format="json",
    )
    assert response.status_code == 400
    assert not Annotation.objects.filter(label_class=foreign.label_class, image=world.image).exists()


# Strict input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("patch", "annotations/{proposal}/", {"state": "accepted", "version": 1, "color": "red"}),
        ("post", "images/{image}/annotations/", {"class_id": 1, "box": [1, 1, 2, 2], "owner": 3}),
        ("patch", "projects/{project}/", {"name": "x", "created_by": 1}),
        ("patch", "projects/{project}/", {"id": 99}),
        ("post", "projects/{project}/exports/", {"format": "coco", "where": "x"}),
        ("post", "projects/{project}/jobs/", {"scope": "new", "force": True}),
        ("post", "images/{image}/annotations/accept-above/", {"min_score": 0.5, "state": "rejected"}),
    ],
)
def test_unknown_fields_in_a_write_answer_400(api_for, world, method, path, body):
    url = f"{V}/" + path.format(proposal=world.proposal.pk, image=world.image.pk, project=world.project.pk)
    client = api_for("manager")
    before = snapshot()
    response = getattr(client, method)(url, body, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 400, response.json()
    assert snapshot() == before


def test_filters_come_from_an_allowlist(api_for, world):
    client = api_for("manager")
    url = f"{V}/projects/{world.project.pk}/images/"
    assert client.get(url, {"original_name__startswith": "plain"}).status_code == 400
    assert client.get(url, {"status": "nonsense"}).status_code == 400


def test_image_filters(api_for, world):
    client = api_for("annotator")
    url = f"{V}/projects/{world.project.pk}/images/"
    Image.objects.filter(pk=world.other_image.pk).update(status=Image.Status.DONE)

    def ids(**params):
        response = client.get(url, params)
        assert response.status_code == 200
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [world.image.pk, world.other_image.pk]
    assert ids(status="done") == [world.other_image.pk]
    assert ids(has_proposals="true") == [world.image.pk]
    assert ids(has_proposals="false") == [world.other_image.pk]
    assert ids(class_id=world.label_class.pk) == [world.image.pk]
    row = client.get(url).json()["results"][0]
    assert (row["annotation_count"], row["proposal_count"]) == (2, 1)


def test_an_invalid_project_setting_is_refused(api_for, world):
    response = api_for("manager").patch(
        f"{V}/projects/{world.project.pk}/", {"keep_threshold": 0.9, "box_threshold": 0.5}, format="json"
    )
    assert response.status_code == 400
    world.project.refresh_from_db()
    assert world.project.box_threshold == 0.35


def test_a_project_is_created_with_its_classes_and_the_creator_manages_it(api_for, admin_user):
    response = api_for("admin").post(
        f"{V}/projects/",
        {"name": "Garage", "classes": [{"name": "car"}, {"name": "bike", "prompt": "a bicycle"}]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["class_count"], body["role"]) == ("Garage", 2, "admin")


# Scoping -----------------------------------------------------------------------------------------


def test_lists_never_include_foreign_rows(api_for, world, foreign):
    for role, expected in [("manager", [world.project.pk]), ("outsider", [])]:
        rows = api_for(role).get(f"{V}/projects/").json()["results"]
        assert [r["id"] for r in rows] == expected
    admin_rows = api_for("admin").get(f"{V}/projects/").json()["results"]
    assert {r["id"] for r in admin_rows} == {world.project.pk, foreign.project.pk}


def test_upload_goes_through_ingest_and_reports_duplicates(api_for, world):
    files = [io.BytesIO(image_bytes(color=(9, 9, 9))), io.BytesIO(image_bytes(color=(9, 9, 9)))]
    files[0].name, files[1].name = "a.png", "b.png"
    response = api_for("manager").post(
        f"{V}/projects/{world.project.pk}/images/", {"files": files}, format="multipart"
    )
    assert response.status_code == 201
    assert len(response.json()["created"]) == 1
    assert len(response.json()["duplicates"]) == 1


def test_a_job_is_started_listed_and_cancelled(api_for, world):
    PrelabelJob.objects.filter(pk=world.job.pk).update(status=PrelabelJob.Status.SUCCEEDED)
    client = api_for("manager")
    started = client.post(f"{V}/projects/{world.project.pk}/jobs/", {"scope": "new"}, format="json")
    assert started.status_code == 201
    job_id = started.json()["id"]
    assert started.json()["total"] == 2
    again = client.post(f"{V}/projects/{world.project.pk}/jobs/", {}, format="json")
    assert again.status_code == 400
    assert client.post(f"{V}/jobs/{job_id}/cancel/").json()["status"] == "cancelled"
    assert client.post(f"{V}/jobs/{job_id}/cancel/").status_code == 409


def test_an_export_downloads_its_file_for_managers_only(api_for, world):
    url = f"{V}/exports/{world.export.pk}/download/"
    response = api_for("manager").get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b'{"images": []}'
    refused = api_for("annotator").get(url)
    assert refused.status_code == 403 and "managers" in refused.json()["error"]
    Export.objects.filter(pk=world.export.pk).update(status=Export.Status.RUNNING)
    assert api_for("manager").get(url).status_code == 404


# Query counts ------------------------------------------------------------------------------------


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def _grow(w, manager, round_: int) -> None:
    images = plain_images(w.project, 3) if round_ == 0 else []
    for image in images:
        for _ in range(3):
            Annotation.objects.create(
                image=image, label_class=w.label_class, x=1, y=1, w=2, h=2, score=0.5,
                source=Annotation.Source.MODEL,
            )  # fmt: skip
    for _ in range(3):
        Annotation.objects.create(
            image=w.image, label_class=w.label_class, x=1, y=1, w=2, h=2, source=Annotation.Source.HUMAN
        )
        PrelabelJob.objects.create(project=w.project, status=PrelabelJob.Status.FAILED)
        Export.objects.create(project=w.project, format="voc", status=Export.Status.FAILED)
        label_class_create(project=w.project, name=f"class {round_}-{_}")
        project_create(user=manager, name=f"more {round_}-{_}")


@pytest.mark.parametrize("role", ["admin", "manager", "annotator"])
def test_list_query_counts_do_not_grow_with_rows(api_for, world, manager, role):
    client = api_for(role)
    urls = [
        f"{V}/projects/",
        f"{V}/projects/{world.project.pk}/classes/",
        f"{V}/projects/{world.project.pk}/images/",
        f"{V}/projects/{world.project.pk}/images/?has_proposals=true",
        f"{V}/projects/{world.project.pk}/jobs/",
        f"{V}/projects/{world.project.pk}/exports/",
        f"{V}/images/{world.image.pk}/annotations/",
    ]
    small = [_queries(client, url) for url in urls]
    _grow(world, manager, 0)
    _grow(world, manager, 1)
    large = [_queries(client, url) for url in urls]
    assert large == small
    assert max(large) <= 6


# Docs ----------------------------------------------------------------------------------------------


def test_the_schema_and_the_docs_page_are_served_with_self_hosted_assets(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "script-src 'self'" in docs["Content-Security-Policy"]
    assert "/static/drf_spectacular_sidecar/" in html
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts
    for attributes in scripts:  # every script is a file from this site: the CSP lets them run
        assert re.fullmatch(r'\s+src="/[^"/][^"]*"', attributes), attributes
    assert "//" not in "".join(re.findall(r'(?:src|href)="([^"]*)"', html))
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()


# Members -----------------------------------------------------------------------------------------


def test_managers_add_change_and_remove_members(api_for, world, outsider):
    client = api_for("manager")
    url = f"{V}/projects/{world.project.pk}/members/"
    added = client.post(url, {"username": "olga", "role": "annotator"}, format="json")
    assert added.status_code == 200
    assert api_for("outsider").get(f"{V}/projects/{world.project.pk}/").status_code == 200
    promoted = client.post(url, {"username": "olga", "role": "manager"}, format="json")
    assert promoted.json()["id"] == added.json()["id"]
    assert promoted.json()["role"] == "manager"
    assert client.delete(f"{url}{added.json()['id']}/").status_code == 204
    assert api_for("outsider").get(f"{V}/projects/{world.project.pk}/").status_code == 404
    assert client.post(url, {"username": "nobody", "role": "annotator"}, format="json").status_code == 400


def test_the_last_manager_cannot_be_removed(api_for, world, manager):
    mine = world.project.memberships.get(user=manager)
    response = api_for("manager").delete(f"{V}/projects/{world.project.pk}/members/{mine.pk}/")
    assert response.status_code == 409
    assert world.project.memberships.filter(pk=mine.pk).exists()


# Errors ------------------------------------------------------------------------------------------


def test_errors_answer_one_readable_sentence_and_the_fields(api_for, world):
    client = api_for("annotator")
    image_url = f"{V}/images/{world.image.pk}/annotations/"
    response = client.post(image_url, {"class_id": "1", "box": [1, 1, 2]}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": "class_id must be an integer (got '1'). "
        "box must be [x, y, width, height] in pixels: four numbers.",
        "fields": {
            "class_id": ["class_id must be an integer (got '1')."],
            "box": ["box must be [x, y, width, height] in pixels: four numbers."],
        },
    }
    nested = client.post(
        f"{image_url}states/", {"updates": [{"id": world.proposal.pk, "version": 1}]}, format="json"
    )
    assert nested.status_code == 400
    assert nested.json() == {
        "error": "updates.0.state: This field is required.",
        "fields": {"updates": {"0": {"state": ["This field is required."]}}},
    }
    unknown = client.post(
        image_url, {"class_id": world.label_class.pk, "box": [1, 1, 2, 2], "x": 1}, format="json"
    )
    assert unknown.json()["error"] == "Unknown field(s): x."
    broken = client.post(image_url, "{", content_type="application/json")
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("The body is not valid JSON: ")
    assert client.get(f"{V}/images/{world.image.pk}/segment/").json() == {
        "error": 'Method "GET" not allowed.'
    }
    assert client.get(f"{V}/images/{world.image.pk + 1000}/").json() == {"error": "No such image."}
