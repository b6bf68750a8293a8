"""The OpenAPI schema: every operation grouped under a declared tag with a one-line summary, the
schema valid (OpenAPI 3.0, no generator warning), and the export request typed per format from
the format registry (each format's options with their types and defaults)."""

from __future__ import annotations

import dataclasses

import pytest
from django.conf import settings
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from labeling.api.schema import doc, format_options
from labeling.formats import registry
from labeling.formats.base import OPTION_SPECS, ExportOptions

pytestmark = pytest.mark.django_db

DECLARED = {tag["name"]: tag.get("description", "") for tag in settings.SPECTACULAR_SETTINGS["TAGS"]}
METHODS = {"get", "post", "put", "patch", "delete"}
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def test_every_operation_has_a_declared_tag_and_a_one_line_summary(schema):
    operations = dict(_operations(schema))
    assert len(operations) >= 40
    untagged = {
        name: op.get("tags") for name, op in operations.items() if op.get("tags") in (None, [], ["v1"])
    }
    assert not untagged, f"operations without a tag (labeling.api.schema.doc on the view): {untagged}"
    undeclared = {name: op["tags"] for name, op in operations.items() if not set(op["tags"]) <= set(DECLARED)}
    assert not undeclared, undeclared
    missing = [name for name, op in operations.items() if not op.get("summary", "").strip()]
    assert not missing, f"operations without a summary: {missing}"
    assert all("\n" not in op["summary"] and len(op["summary"]) <= 80 for op in operations.values())
    # Every declared tag is used and described, in the schema's own tag list too.
    used = {tag for op in operations.values() for tag in op["tags"]}
    assert used == set(DECLARED)
    assert all(DECLARED.values())
    assert [(t["name"], t["description"]) for t in schema["tags"]] == list(DECLARED.items())
    by_tag = {name: op["tags"][0] for name, op in operations.items()}
    assert by_tag["POST /api/v1/auth/token/"] == "auth"
    assert by_tag["GET /api/v1/projects/{project_id}/members/"] == "members"
    assert by_tag["POST /api/v1/images/{image_id}/segment/"] == "segmentation"
    assert by_tag["POST /api/v1/images/{image_id}/submit/"] == "review"


def test_doc_refuses_an_undeclared_tag():
    with pytest.raises(ValueError, match="Undeclared API tag 'v2'"):
        doc("v2", get="Anything")


def test_the_schema_is_valid_openapi_without_warnings(schema, tmp_path):
    validate_schema(schema)  # raises on an invalid document
    # The generator's own run, failing on any warning (as `manage.py spectacular --validate
    # --fail-on-warn` does in CI).
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert target.stat().st_size > 0


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    if "allOf" in node and len(node["allOf"]) == 1:  # a reference with its own keys (a default) beside
        siblings = {key: value for key, value in node.items() if key != "allOf"}
        return {**_resolve(schema, node["allOf"][0]), **siblings}
    return node


def _export_variants(schema: dict) -> dict[str, dict]:
    body = schema["paths"]["/api/v1/projects/{project_id}/exports/"]["post"]["requestBody"]
    start = _resolve(schema, body["content"]["application/json"]["schema"])
    assert start["discriminator"]["propertyName"] == "format"
    variants = {
        name: _resolve(schema, {"$ref": ref}) for name, ref in start["discriminator"]["mapping"].items()
    }
    assert [_resolve(schema, ref) for ref in start["oneOf"]] == list(variants.values())
    return variants


def test_the_export_request_lists_each_format_s_options_with_types_and_defaults(schema):
    variants = _export_variants(schema)
    exportable = [f for f in registry.FORMATS.values() if f.write is not None]
    assert set(variants) == {f.name for f in exportable}
    for fmt in exportable:
        variant = variants[fmt.name]
        assert _resolve(schema, variant["properties"]["format"])["enum"] == [fmt.name]
        assert variant["required"] == ["format"]
        options = _resolve(schema, variant["properties"]["options"])["properties"]
        assert list(options) == format_options(fmt)
        common = {name for name, spec in OPTION_SPECS.items() if spec.common}
        assert common | set(fmt.options) == set(options)
        for name, option in options.items():
            option = _resolve(schema, option)
            assert option.get("type"), (fmt.name, name)
            assert option.get("description"), (fmt.name, name)
            default = fmt.default(name)
            if default is None:
                assert option.get("nullable") is True, (fmt.name, name)
            elif isinstance(default, tuple):
                assert option["type"] == "array" and option["default"] == list(default)
            else:
                assert option["type"] == JSON_TYPES[type(default)], (fmt.name, name)
                assert option.get("default") == default, (fmt.name, name, option)
    # The figures a client needs, spelled out.
    yolo = _resolve(schema, variants["yolo_detect"]["properties"]["options"])["properties"]
    assert yolo["val_ratio"]["type"] == "number" and yolo["val_ratio"]["default"] == 0.1
    images = _resolve(schema, yolo["images"])
    assert images["enum"] == ["done", "done_prelabeled", "all"] and images["default"] == "done"
    assert (yolo["val_ratio"]["minimum"], yolo["val_ratio"]["maximum"]) == (0, 1)
    assert yolo["val_ratio"]["exclusiveMaximum"] is True
    assert yolo["seed"] == {**yolo["seed"], "type": "integer", "default": 0}
    assert "rle" not in yolo
    coco = _resolve(schema, variants["coco"]["properties"]["options"])["properties"]
    assert coco["rle"]["type"] == "boolean" and coco["rle"]["default"] is False
    assert coco["zip_images"]["default"] is False and "val_ratio" not in coco
    states = coco["states"]
    assert states["type"] == "array" and _resolve(schema, states["items"])["enum"] == ["accepted", "proposed"]


def test_an_option_a_format_declares_appears_without_editing_the_schema_code(monkeypatch):
    """The options are read from the registry at schema time: a format given one more option
    shows it in the next schema."""
    coco = registry.FORMATS["coco"]
    monkeypatch.setitem(
        registry.FORMATS, "coco", dataclasses.replace(coco, options=coco.options | {"val_ratio"})
    )
    schema = SchemaGenerator().get_schema(request=None, public=True)
    options = _resolve(schema, _export_variants(schema)["coco"]["properties"]["options"])["properties"]
    assert options["val_ratio"]["type"] == "number"


def test_an_unknown_export_option_is_a_400_naming_it(api_for, world):
    client = api_for("manager")
    url = f"/api/v1/projects/{world.project.pk}/exports/"
    inside = client.post(url, {"format": "coco", "options": {"bogus_option": 1}}, format="json")
    assert inside.status_code == 400
    assert "bogus_option" in inside.json()["error"]
    # val_ratio belongs inside "options": beside them it is refused, by name.
    beside = client.post(url, {"format": "yolo_detect", "val_ratio": 0.2}, format="json")
    assert beside.status_code == 400
    assert "val_ratio" in str(beside.json())
    typed = client.post(
        url,
        {"format": "yolo_detect", "options": {"val_ratio": 0.5, "seed": 3, "images": "all"}},
        format="json",
    )
    assert typed.status_code == 201, typed.json()
    assert typed.json()["options"]["val_ratio"] == 0.5


def test_an_export_s_stored_options_are_typed_too(schema):
    export = schema["components"]["schemas"]["Export"]["properties"]["options"]
    stored = _resolve(schema, export)["properties"]
    assert list(stored) == [f.name for f in dataclasses.fields(ExportOptions)]
    assert stored["val_ratio"]["type"] == "number" and stored["rle"]["type"] == "boolean"
