"""The OpenAPI schema's extras (drf-spectacular): operations grouped by resource, and the export
request typed from the format registry.

Tags: every operation has one of TAGS (declared, with a description each, in
SPECTACULAR_SETTINGS["TAGS"]) and a one-line summary, given on its view by `doc`:

    @doc("jobs", get="List a project's pre-label jobs", post="Start a pre-label job")
    class ProjectJobs(...): ...

Export options: POST /projects/{id}/exports/'s body is typed per format, at schema time, from
the registry (labeling.formats.registry.FORMATS: the options each format reads, and its
defaults) and the options' declarations (formats.base.OPTION_SPECS: kind, label, help, choices):
one "<Format>ExportStart" component per format, with its "<Format>ExportOptions", and a
discriminator on `format`. An option declared there (or a new format) appears in the schema
without editing this module.
"""

from __future__ import annotations

from dataclasses import fields
from functools import lru_cache

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers

from ..formats.base import OPTION_SPECS, STATES, ExportOptions
from ..formats.registry import FORMATS, Format

TAGS: tuple[str, ...] = tuple(tag["name"] for tag in settings.SPECTACULAR_SETTINGS.get("TAGS", ()))


def doc(tag: str, **summaries: str):
    """The view's operations' tag and one-line summaries, by HTTP method (a class decorator that
    leaves the view's own extend_schema decorators as they are)."""
    if tag not in TAGS:
        raise ValueError(f"Undeclared API tag {tag!r}; declare it in SPECTACULAR_SETTINGS['TAGS'].")
    return extend_schema_view(
        **{method: extend_schema(tags=[tag], summary=summary) for method, summary in summaries.items()}
    )


# Export options, typed from the registry --------------------------------------------------------


@extend_schema_field(
    {"type": "number", "format": "double", "minimum": 0, "maximum": 1, "exclusiveMaximum": True}
)
class RatioField(serializers.FloatField):
    """A fraction in [0, 1) (documented as such; ExportOptions.from_json checks it)."""


def option_field(name: str, default) -> serializers.Field:
    """The serializer field an option's value is documented as, from its declaration
    (formats.base.OPTION_SPECS: kind, label, help, choices) and its default."""
    spec = OPTION_SPECS[name]
    kwargs = {"required": False, "help_text": f"{spec.label}. {spec.help}".strip()}
    if spec.kind == "states":
        return serializers.ListField(
            child=serializers.ChoiceField(choices=list(STATES)), default=list(default), **kwargs
        )
    if spec.kind == "class_ids":
        return serializers.ListField(
            child=serializers.IntegerField(min_value=1), allow_null=True, default=None, **kwargs
        )
    if spec.kind == "choice":
        return serializers.ChoiceField(choices=list(spec.choices), default=default, **kwargs)
    if spec.kind == "bool":
        return serializers.BooleanField(default=default, **kwargs)
    if spec.kind == "int":
        return serializers.IntegerField(default=default, **kwargs)
    if spec.kind == "float" and (spec.minimum, spec.maximum) == (0.0, 1.0):
        return RatioField(default=default, **kwargs)
    return serializers.FloatField(default=default, min_value=spec.minimum, max_value=spec.maximum, **kwargs)


def format_options(fmt: Format) -> list[str]:
    """The options of an export in this format: the common ones, then the format's, in
    ExportOptions' order."""
    return [f.name for f in fields(ExportOptions) if OPTION_SPECS[f.name].common or f.name in fmt.options]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part)


@lru_cache(maxsize=8)
def _export_start_variants(key: tuple) -> dict[str, type[serializers.Serializer]]:
    """Per export format, a serializer of its POST body (format + its typed options); cached per
    registry state (`key`), so one schema run registers each component once."""
    variants = {}
    for name, label, options in key:  # options: (name, default) pairs
        camel = _camel(name)
        options_class = type(
            f"{camel}ExportOptionsSerializer",
            (serializers.Serializer,),
            {
                "__doc__": f"The options of a {label} export (unknown names are refused with a 400).",
                **{option: option_field(option, default) for option, default in options},
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
    key = tuple(
        (f.name, f.label, tuple((o, _hashable(f.default(o))) for o in format_options(f)))
        for f in FORMATS.values()
        if f.write is not None
    )
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


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


@lru_cache(maxsize=8)
def _stored_options(names: tuple[str, ...]) -> type[serializers.Serializer]:
    return type(
        "ExportOptionsSerializer",
        (serializers.Serializer,),
        {
            "__doc__": "An export's options as stored: every option, the ones its format does not "
            "read at their defaults.",
            **{name: option_field(name, ExportOptions.__dataclass_fields__[name].default) for name in names},
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
