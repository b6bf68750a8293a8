"""The OpenAPI schema's extras (drf-spectacular): operations grouped by resource, and the export
request typed from the format registry.

Tags: every operation has one of TAGS (declared, with a description each, in
SPECTACULAR_SETTINGS["TAGS"]) and a one-line summary, given on its view by `doc`:

    @doc("jobs", get="List a project's pre-label jobs", post="Start a pre-label job")
    class ProjectJobs(...): ...

Export options: POST /projects/{id}/exports/'s body is typed per format, at schema time, from
the registry (labeling.formats.registry.FORMATS: the options each format declares) and
ExportOptions' fields (their types and defaults): one "<Format>ExportStart" component per
format, with its "<Format>ExportOptions", and a discriminator on `format`. An option added to a
format (or a new format) appears in the schema without editing this module; OPTION_DOCS only
adds a sentence about the options it knows.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from functools import lru_cache

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers

from ..formats.base import STATES, ExportOptions
from ..formats.registry import FORMATS, Format

TAGS: tuple[str, ...] = tuple(tag["name"] for tag in settings.SPECTACULAR_SETTINGS.get("TAGS", ()))

# The options every writer honours, whatever the format declares.
COMMON_OPTIONS = ("states", "class_ids", "include_empty")

OPTION_DOCS = {
    "states": 'The annotation states exported: ["accepted"], or ["accepted", "proposed"] (proposals at or '
    "above their class's threshold too).",
    "class_ids": "Only these classes (ids of the project's classes); null: every class.",
    "include_empty": "Export images with no exported annotation too.",
    "zip_images": "A zip holding the JSON and the images, instead of the JSON alone.",
    "rle": "Every mask as COCO RLE (else polygons where the mask has them).",
    "val_ratio": "The fraction of images put in the val split, in [0, 1); 0: no val split.",
    "seed": "The seed of the train / val split (the same seed, the same split).",
}


def doc(tag: str, **summaries: str):
    """The view's operations' tag and one-line summaries, by HTTP method (a class decorator that
    leaves the view's own extend_schema decorators as they are)."""
    if tag not in TAGS:
        raise ValueError(f"Undeclared API tag {tag!r}; declare it in SPECTACULAR_SETTINGS['TAGS'].")
    return extend_schema_view(
        **{method: extend_schema(tags=[tag], summary=summary) for method, summary in summaries.items()}
    )


# Export options, typed from the registry --------------------------------------------------------


def _default(name: str):
    field = ExportOptions.__dataclass_fields__[name]
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return None


@extend_schema_field(
    {"type": "number", "format": "double", "minimum": 0, "maximum": 1, "exclusiveMaximum": True}
)
class RatioField(serializers.FloatField):
    """A fraction in [0, 1) (documented as such; ExportOptions.from_json checks it)."""


def option_field(name: str) -> serializers.Field:
    """The serializer field an option's value is documented as: its type from ExportOptions'
    default (or annotation), its default, a sentence (OPTION_DOCS, or the field's metadata
    "help"), and "choices" from the field's metadata where it declares them."""
    field = ExportOptions.__dataclass_fields__[name]
    default = _default(name)
    help_text = field.metadata.get("help") or OPTION_DOCS.get(name, "")
    kwargs = {"required": False, "help_text": help_text}
    if name == "states":
        return serializers.ListField(
            child=serializers.ChoiceField(choices=list(STATES)), default=list(default), **kwargs
        )
    if name == "class_ids":
        return serializers.ListField(
            child=serializers.IntegerField(min_value=1), allow_null=True, default=None, **kwargs
        )
    if name == "val_ratio":
        return RatioField(default=default, **kwargs)
    choices = field.metadata.get("choices")
    if choices:
        return serializers.ChoiceField(choices=list(choices), default=default, **kwargs)
    annotation = str(field.type)
    if isinstance(default, bool) or annotation == "bool":
        return serializers.BooleanField(default=default, **kwargs)
    if isinstance(default, int) or annotation == "int":
        return serializers.IntegerField(default=default, **kwargs)
    if isinstance(default, float) or annotation == "float":
        return serializers.FloatField(default=default, **kwargs)
    if isinstance(default, list | tuple) or annotation.startswith(("tuple", "list")):
        return serializers.ListField(default=list(default or ()), allow_null=default is None, **kwargs)
    return serializers.CharField(default=default, allow_null=default is None, **kwargs)


def format_options(fmt: Format) -> list[str]:
    """The options of an export in this format: the common ones, then the format's, in
    ExportOptions' order (only names ExportOptions has)."""
    names = [f.name for f in fields(ExportOptions)]
    return [n for n in names if n in COMMON_OPTIONS or n in fmt.options]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part)


@lru_cache(maxsize=8)
def _export_start_variants(key: tuple) -> dict[str, type[serializers.Serializer]]:
    """Per export format, a serializer of its POST body (format + its typed options); cached per
    registry state (`key`), so one schema run registers each component once."""
    variants = {}
    for name, label, options in key:
        camel = _camel(name)
        options_class = type(
            f"{camel}ExportOptionsSerializer",
            (serializers.Serializer,),
            {
                "__doc__": f"The options of a {label} export (unknown names are refused with a 400).",
                **{option: option_field(option) for option in options},
            },
        )
        variants[name] = type(
            f"{camel}ExportStartSerializer",
            (serializers.Serializer,),
            {
                "__doc__": f"Start a {label} export.",
                "format": serializers.ChoiceField(choices=[(name, label)]),
                "options": options_class(required=False, help_text="Omitted options take their default."),
            },
        )
    return variants


def export_start_variants() -> dict[str, type[serializers.Serializer]]:
    """The export POST body's serializer per exportable format, from the registry as it is now."""
    key = tuple((f.name, f.label, tuple(format_options(f))) for f in FORMATS.values() if f.write is not None)
    return _export_start_variants(key)


class ExportStartSchema(OpenApiSerializerExtension):
    """ExportStartSerializer in the schema: one of the per-format bodies, by `format`."""

    target_class = "labeling.api.serializers.ExportStartSerializer"

    def map_serializer(self, auto_schema, direction):
        refs = {
            name: auto_schema.resolve_serializer(variant, direction).ref
            for name, variant in export_start_variants().items()
        }
        return {
            "oneOf": list(refs.values()),
            "discriminator": {
                "propertyName": "format",
                "mapping": {name: ref["$ref"] for name, ref in refs.items()},
            },
        }


@lru_cache(maxsize=8)
def _stored_options(names: tuple[str, ...]) -> type[serializers.Serializer]:
    return type(
        "ExportOptionsSerializer",
        (serializers.Serializer,),
        {
            "__doc__": "An export's options as stored: every option, the ones its format does not "
            "read at their defaults.",
            **{name: option_field(name) for name in names},
        },
    )


class ExportSchema(OpenApiSerializerExtension):
    """ExportSerializer in the schema: its `options` (a JSON column) typed as every option."""

    target_class = "labeling.api.serializers.ExportSerializer"

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        stored = _stored_options(tuple(f.name for f in fields(ExportOptions)))
        if "options" in schema.get("properties", {}):
            ref = auto_schema.resolve_serializer(stored, direction).ref
            schema["properties"]["options"] = {"allOf": [ref], "readOnly": True}
        return schema
