"""Every route of the OpenAPI schema (test_api_matrix's list): an unknown query parameter is a
400 naming it (and changes nothing), the documented ones are taken; the browsable API is off
(?format=api is a 404, Accept: text/html a 406), every answer is JSON."""

from __future__ import annotations

import pytest
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator

from tests.labeling.api_helpers import snapshot
from tests.labeling.test_api_matrix import DEFAULT_IDS, ROUTES, Route, V

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("task_calls", "clear_throttles")]

GET_ROUTES = sorted(key for key in ROUTES if key[0] == "GET")


def url_of(template: str, route: Route, w) -> str:
    ids = {name: getattr(w, DEFAULT_IDS[name]).pk for name in DEFAULT_IDS}
    ids.update({name: getattr(w, attr).pk for name, attr in route.ids.items()})
    return template.format(**{k: v for k, v in ids.items() if "{" + k + "}" in template})


def role_for(route: Route) -> str:
    return "manager" if "manager" in route.allowed else "admin"


def send(client, method: str, url: str, route: Route, w, **extra):
    kwargs = {**route.headers, **extra}
    if route.body is not None:
        kwargs["data"] = route.body(w)
        kwargs["format"] = "multipart" if route.multipart else "json"
    return getattr(client, method.lower())(url, **kwargs)


@pytest.mark.parametrize(("method", "template"), sorted(ROUTES), ids=lambda v: v)
def test_an_unknown_query_parameter_is_a_400_naming_it(api_for, world, method, template):
    route = ROUTES[method, template]
    if route.prepare:
        route.prepare(world)
    client = api_for(role_for(route))
    before = snapshot()
    response = send(client, method, url_of(template, route, world) + "?sort=name&page=1", route, world)
    if "page" in resolve(url_of(template, route, world)).func.view_class.query_params:
        expected = "Unknown query parameter(s): sort."
    else:
        expected = "Unknown query parameter(s): page, sort."
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert expected in response.json()["error"]
    assert snapshot() == before


def schema_query_parameters() -> dict[tuple[str, str], set[str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path): {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_every_documented_query_parameter_is_taken_by_its_route(world):
    documented = schema_query_parameters()
    assert set(documented) == set(ROUTES)
    for (method, template), names in documented.items():
        view = resolve(url_of(template, ROUTES[method, template], world)).func.view_class
        assert names <= view.query_params, (method, template, names)


@pytest.mark.parametrize(("method", "template"), GET_ROUTES, ids=lambda v: v)
def test_the_documented_query_is_answered(api_for, world, method, template):
    route = ROUTES[method, template]
    url = url_of(template, route, world)
    query = {"format": "json"}
    if "page" in resolve(url).func.view_class.query_params:
        query["page"] = "1"
    if template == f"{V}/projects/{{project_id}}/images/":
        query.update(status="new", class_id=str(world.label_class.pk), has_proposals="false")
    response = api_for(role_for(route)).get(url, query)
    assert response.status_code == route.ok, response.content[:300]


@pytest.mark.parametrize(("method", "template"), GET_ROUTES, ids=lambda v: v)
def test_the_browsable_api_is_off(api_for, world, method, template):
    route = ROUTES[method, template]
    client = api_for(role_for(route))
    url = url_of(template, route, world)
    response = client.get(url + "?format=api")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    response = client.get(url, HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "This API answers JSON only (application/json), not text/html."
