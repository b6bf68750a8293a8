"""Every route of the OpenAPI schema × every role: the allowed ones work, the others get
401 / 403 / 404 and change nothing; a foreign id answers 404."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from labeling.models import Image, PrelabelJob
from tests.conftest import PASSWORD, image_bytes
from tests.labeling.api_helpers import ROLES, World, coco_bytes, snapshot

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("task_calls", "clear_throttles")]

EVERYONE = frozenset(ROLES)
USERS = frozenset({"admin", "manager", "annotator", "outsider"})
MEMBERS = frozenset({"admin", "manager", "annotator"})
MANAGERS = frozenset({"admin", "manager"})


def _upload(w: World) -> dict:
    return {"files": [io.BytesIO(image_bytes(color=(1, 2, 3)))]}


def _import(w: World) -> dict:
    data = io.BytesIO(coco_bytes(w.image.original_name, w.label_class.name))
    data.name = "dataset.json"
    return {"file": data, "format": "coco"}


def _done_image(w: World) -> None:
    Image.objects.filter(pk=w.image.pk).update(status=Image.Status.DONE)


def _no_active_job(w: World) -> None:
    PrelabelJob.objects.filter(pk=w.job.pk).update(status=PrelabelJob.Status.SUCCEEDED)


@dataclass(frozen=True)
class Route:
    allowed: frozenset
    ok: int = 200
    body: Callable[[World], dict] | None = None
    multipart: bool = False
    ids: dict = field(default_factory=dict)  # path parameter → World attribute (defaults below)
    prepare: Callable[[World], None] | None = None
    headers: dict = field(default_factory=dict)


DEFAULT_IDS = {
    "project_id": "project",
    "image_id": "image",
    "annotation_id": "proposal",
    "job_id": "job",
    "export_id": "export",
    "membership_id": "annotator_membership",
    "import_id": "import_job",
    "invitation_id": "invitation",
    "request_id": "find_more",
    "run_id": "prompt_run",
    "candidate_id": "prompt_candidate",
}

V = "/api/v1"
ROUTES: dict[tuple[str, str], Route] = {
    ("POST", f"{V}/auth/token/"): Route(EVERYONE, body=lambda w: {"username": "manny", "password": PASSWORD}),
    ("DELETE", f"{V}/auth/token/"): Route(USERS, ok=204),
    ("GET", f"{V}/projects/"): Route(USERS),
    ("POST", f"{V}/projects/"): Route(frozenset({"admin"}), ok=201, body=lambda w: {"name": "New"}),
    ("GET", f"{V}/projects/{{project_id}}/"): Route(MEMBERS),
    ("PATCH", f"{V}/projects/{{project_id}}/"): Route(MANAGERS, body=lambda w: {"box_threshold": 0.5}),
    ("GET", f"{V}/projects/{{project_id}}/classes/"): Route(MEMBERS),
    ("POST", f"{V}/projects/{{project_id}}/classes/"): Route(
        MANAGERS, ok=201, body=lambda w: {"name": "mug"}
    ),
    ("GET", f"{V}/projects/{{project_id}}/members/"): Route(MANAGERS),
    ("POST", f"{V}/projects/{{project_id}}/members/"): Route(
        MANAGERS, body=lambda w: {"username": "olga", "role": "annotator"}
    ),
    ("DELETE", f"{V}/projects/{{project_id}}/members/{{membership_id}}/"): Route(MANAGERS, ok=204),
    ("GET", f"{V}/projects/{{project_id}}/invitations/"): Route(MANAGERS),
    ("DELETE", f"{V}/projects/{{project_id}}/invitations/{{invitation_id}}/"): Route(MANAGERS, ok=204),
    ("GET", f"{V}/projects/{{project_id}}/images/"): Route(MEMBERS),
    ("POST", f"{V}/projects/{{project_id}}/threshold/"): Route(
        MANAGERS, body=lambda w: {"box_threshold": 0.5}
    ),
    ("POST", f"{V}/projects/{{project_id}}/images/"): Route(MANAGERS, ok=201, body=_upload, multipart=True),
    ("GET", f"{V}/projects/{{project_id}}/jobs/"): Route(MEMBERS),
    ("POST", f"{V}/projects/{{project_id}}/jobs/"): Route(
        MANAGERS, ok=201, body=lambda w: {}, prepare=_no_active_job
    ),
    ("GET", f"{V}/projects/{{project_id}}/exports/"): Route(MEMBERS),
    ("POST", f"{V}/projects/{{project_id}}/exports/"): Route(
        MANAGERS, ok=201, body=lambda w: {"format": "coco"}
    ),
    ("POST", f"{V}/projects/{{project_id}}/imports/"): Route(MANAGERS, ok=202, body=_import, multipart=True),
    ("GET", f"{V}/imports/{{import_id}}/"): Route(MEMBERS),
    ("GET", f"{V}/projects/{{project_id}}/filmstrip/"): Route(MEMBERS),
    ("GET", f"{V}/projects/{{project_id}}/image-names/"): Route(MEMBERS),
    ("GET", f"{V}/images/{{image_id}}/"): Route(MEMBERS),
    ("GET", f"{V}/images/{{image_id}}/peek-next/"): Route(MEMBERS),
    ("GET", f"{V}/images/{{image_id}}/previous/"): Route(MEMBERS),
    ("DELETE", f"{V}/images/{{image_id}}/"): Route(MANAGERS, ok=204, ids={"image_id": "other_image"}),
    ("POST", f"{V}/images/{{image_id}}/lease/"): Route(MEMBERS, body=lambda w: {}),
    ("POST", f"{V}/images/{{image_id}}/submit/"): Route(MEMBERS, body=lambda w: {}),
    ("POST", f"{V}/images/{{image_id}}/skip/"): Route(MEMBERS, body=lambda w: {}),
    ("GET", f"{V}/images/{{image_id}}/annotations/"): Route(MEMBERS),
    ("POST", f"{V}/images/{{image_id}}/annotations/"): Route(
        MEMBERS, ok=201, body=lambda w: {"class_id": w.label_class.pk, "box": [3, 3, 4, 4]}
    ),
    ("POST", f"{V}/images/{{image_id}}/annotations/states/"): Route(
        MEMBERS, body=lambda w: {"updates": [{"id": w.proposal.pk, "version": 1, "state": "accepted"}]}
    ),
    ("POST", f"{V}/images/{{image_id}}/annotations/accept-above/"): Route(
        MEMBERS, body=lambda w: {"min_score": 0.5}
    ),
    # No SAM checkpoint on this test server: members get the clear 503 (what to set), never a 202.
    ("POST", f"{V}/images/{{image_id}}/segment/"): Route(
        MEMBERS, ok=503, body=lambda w: {"points": [[5, 5]], "labels": [1]}
    ),
    # A Grounding DINO project without a SAM 3 model: members get the 409 with the reason.
    ("POST", f"{V}/images/{{image_id}}/find-more/"): Route(
        MEMBERS, ok=409, body=lambda w: {"annotation": w.proposal.pk}
    ),
    ("GET", f"{V}/find-more/{{request_id}}/"): Route(MEMBERS),
    ("GET", f"{V}/annotations/{{annotation_id}}/"): Route(MEMBERS),
    ("PATCH", f"{V}/annotations/{{annotation_id}}/"): Route(
        MEMBERS, body=lambda w: {"state": "accepted"}, headers={"HTTP_IF_MATCH": '"1"'}
    ),
    ("DELETE", f"{V}/annotations/{{annotation_id}}/"): Route(
        MEMBERS, ok=204, ids={"annotation_id": "drawn"}, headers={"HTTP_IF_MATCH": '"1"'}
    ),
    ("POST", f"{V}/annotations/{{annotation_id}}/accept/"): Route(MEMBERS, body=lambda w: {"version": 1}),
    ("POST", f"{V}/annotations/{{annotation_id}}/reject/"): Route(MEMBERS, body=lambda w: {"version": 1}),
    ("GET", f"{V}/jobs/{{job_id}}/"): Route(MEMBERS),
    ("POST", f"{V}/jobs/{{job_id}}/cancel/"): Route(MANAGERS),
    ("GET", f"{V}/exports/{{export_id}}/"): Route(MEMBERS),
    ("GET", f"{V}/exports/{{export_id}}/download/"): Route(MANAGERS),  # annotators: 403
    # The prompt lab is a manager's tool, reading included.
    ("GET", f"{V}/projects/{{project_id}}/prompt-lab/"): Route(MANAGERS),
    ("POST", f"{V}/projects/{{project_id}}/prompt-lab/"): Route(
        MANAGERS,
        ok=201,
        body=lambda w: {"class_id": w.label_class.pk, "prompts": ["a small cat"]},
        prepare=_done_image,
    ),
    ("GET", f"{V}/prompt-lab/runs/{{run_id}}/"): Route(MANAGERS),
    ("POST", f"{V}/prompt-lab/runs/{{run_id}}/cancel/"): Route(MANAGERS),
    ("POST", f"{V}/prompt-lab/candidates/{{candidate_id}}/use/"): Route(
        MANAGERS, body=lambda w: {"set_threshold": True}
    ),
}


def schema_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_the_matrix_covers_every_route_of_the_schema():
    assert schema_operations() == set(ROUTES)


def call(client, method: str, template: str, route: Route, w: World):
    ids = {name: getattr(w, DEFAULT_IDS[name]).pk for name in DEFAULT_IDS}
    ids.update({name: getattr(w, attr).pk for name, attr in route.ids.items()})
    url = template.format(**{k: v for k, v in ids.items() if "{" + k + "}" in template})
    kwargs = dict(route.headers)
    if route.body is not None:
        kwargs["data"] = route.body(w)
        kwargs["format"] = "multipart" if route.multipart else "json"
    return getattr(client, method.lower())(url, **kwargs)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "template"), sorted(ROUTES), ids=lambda v: v)
def test_route_by_role(api_for, world, role, method, template):
    route = ROUTES[method, template]
    if route.prepare:
        route.prepare(world)
    client = api_for(role)
    before = snapshot()
    response = call(client, method, template, route, world)
    if role in route.allowed:
        assert response.status_code == route.ok, (response.status_code, getattr(response, "data", None))
        return
    expected = {"anonymous": 401, "outsider": 404}.get(role, 403)
    if template == f"{V}/projects/" and method == "POST":
        expected = 401 if role == "anonymous" else 403  # no project id: nothing to hide
    assert response.status_code == expected, (response.status_code, getattr(response, "data", None))
    assert response["Content-Type"].startswith("application/json")
    assert snapshot() == before


ID_ROUTES = sorted(key for key in ROUTES if "{" in key[1])


@pytest.mark.parametrize(("method", "template"), ID_ROUTES, ids=lambda v: v)
@pytest.mark.parametrize("role", ["manager", "annotator"])
def test_a_foreign_id_answers_404_and_changes_nothing(api_for, world, foreign, role, method, template):
    route = ROUTES[method, template]
    client = api_for(role)
    before = snapshot()
    response = call(client, method, template, route, foreign)
    assert response.status_code == 404, (response.status_code, getattr(response, "data", None))
    assert snapshot() == before


def test_anonymous_api_calls_get_401_json_not_the_login_redirect(world):
    response = Client().get(f"{V}/projects/{world.project.pk}/images/")
    assert response.status_code == 401
    assert response.json()["error"]
    assert response["WWW-Authenticate"] == "Token"
