"""The format registry: one entry per dataset format, and the only list of formats there is.

A format is one module (a writer ``write(source, path, progress) -> (images, annotations)`` that
reads a ``base.Source``, and/or a reader ``read(fileobj, name) -> parsed.ParsedDataset``) plus
one ``Format`` entry in ``FORMATS`` below. Everything else asks the registry: the export
service and task, the export panel's and the API's format choices, ``Export.format``'s choices
(a callable: no migration per format), the import service, page form and API, and the
``export`` / ``import_annotations`` commands.

Import names: formats that share a reader are imported under one name (``import_name``):
"yolo" reads both YOLO flavours; a format's own name is accepted too ("yolo_detect" → "yolo").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from . import coco, coco_import, voc, voc_import, yolo, yolo_import
from .base import OPTION_SPECS, ExportOptions, FormatError, OptionSpec, Progress, Source
from .parsed import ParsedDataset

Writer = Callable[[Source, Path, Progress], tuple[int, int]]
Check = Callable[[Source], None]  # FormatError when an export cannot be written (said at its start)
Reader = Callable[[BinaryIO, str], ParsedDataset]

NAME_MAX_LENGTH = 16  # Export.format's max_length
# The format-specific options (their declarations: base.OPTION_SPECS); every writer also honours
# the common ones (states, images, class_ids, include_empty).
OPTIONS = frozenset(name for name, spec in OPTION_SPECS.items() if not spec.common)
COMMON_OPTIONS = tuple(name for name, spec in OPTION_SPECS.items() if spec.common)


@dataclass(frozen=True)
class Format:
    """One dataset format. ``options``: the ExportOptions fields its writer reads beyond the
    ones every writer honours (states, class_ids, include_empty); with "zip_images" the file is
    a zip when that option is on, whatever ``extension`` says."""

    name: str  # stored on Export.format; the value of the form's and the API's choices
    label: str
    extension: str  # of the export's file, without the dot
    write: Writer | None = None  # None: import only
    read: Reader | None = None  # None: export only
    options: frozenset[str] = frozenset()
    defaults: tuple = ()  # (option, value) pairs: this format's defaults where ExportOptions' differ
    check: Check | None = None  # run when an export starts: refuse early, with the reason
    import_name: str = ""  # "" → name; formats sharing a reader share it
    import_label: str = ""  # "" → label; the import form's and the API's choice label

    def __post_init__(self) -> None:
        if not 0 < len(self.name) <= NAME_MAX_LENGTH:
            raise ValueError(f"A format name has 1 to {NAME_MAX_LENGTH} characters: {self.name!r}.")
        if self.write is None and self.read is None:
            raise ValueError(f"Format {self.name!r} has neither a writer nor a reader.")
        if not self.options <= OPTIONS:
            raise ValueError(f"Format {self.name!r}: unknown option(s) {sorted(self.options - OPTIONS)}.")
        if not {name for name, _ in self.defaults} <= self.options:
            raise ValueError(f"Format {self.name!r}: a default for an option it does not read.")
        object.__setattr__(self, "import_name", self.import_name or self.name)
        object.__setattr__(self, "import_label", self.import_label or self.label)

    def export_extension(self, options: ExportOptions) -> str:
        """The export file's extension under these options."""
        return "zip" if "zip_images" in self.options and options.zip_images else self.extension

    def option_specs(self) -> list[OptionSpec]:
        """This format's own options, in declaration order (base.OPTION_SPECS)."""
        return [spec for name, spec in OPTION_SPECS.items() if name in self.options]

    def default(self, name: str):
        """An option's default for this format."""
        return dict(self.defaults).get(name, ExportOptions.__dataclass_fields__[name].default)

    def extensions(self) -> list[str]:
        """Every extension this format's files have (what its reader is given)."""
        zipped = "zip_images" in self.options and self.extension != "zip"
        return [self.extension, "zip"] if zipped else [self.extension]


COCO = Format(
    "coco",
    "COCO JSON",
    "json",
    write=coco.write,
    read=coco_import.read,
    options=frozenset({"zip_images", "rle", "box_segmentation"}),
    import_label="COCO JSON (.json, or a .zip with the JSON and images/)",
)
YOLO_DETECT = Format(
    "yolo_detect",
    "YOLO detect",
    "zip",
    write=yolo.write_detect,
    read=yolo_import.read,
    options=frozenset({"val_ratio", "seed", "val_is_train"}),
    defaults=(("val_ratio", 0.1),),
    check=yolo.check,
    import_name="yolo",
    import_label="YOLO detect / segment (.zip: data.yaml, labels/, images/)",
)
VOC = Format(
    "voc",
    "Pascal VOC",
    "zip",
    write=voc.write,
    read=voc_import.read,
    options=frozenset({"val_ratio", "seed"}),
    import_label="Pascal VOC (.zip: Annotations/, JPEGImages/, SegmentationObject/)",
)

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        COCO,
        YOLO_DETECT,
        replace(
            YOLO_DETECT,
            name="yolo_segment",
            label="YOLO segment",
            write=yolo.write_segment,
            options=YOLO_DETECT.options | {"segment_parts"},
        ),
        VOC,
    )
}


# Export ----------------------------------------------------------------------------------------


def export_choices() -> list[tuple[str, str]]:
    """(name, label) of every format that can be exported, in registry order."""
    return [(f.name, f.label) for f in FORMATS.values() if f.write is not None]


def export_format(name: str) -> Format:
    """The format to export as; FormatError naming the choices when there is none of that name."""
    found = FORMATS.get(name)
    if found is None or found.write is None:
        choices = ", ".join(n for n, _ in export_choices())
        raise FormatError(f"Unknown format {name!r}; choose one of {choices}.")
    return found


def export_options(name: str, data: dict | None) -> ExportOptions:
    """Validated options for an export as `name` from a dict (the API's, the form's): the
    format's defaults where a key is missing; FormatError on an unknown format or a bad option."""
    fmt = export_format(name)
    return ExportOptions.from_json({**dict(fmt.defaults), **dict(data or {})})


def option_words(name: str, data: dict) -> list[str]:
    """An export's options in plain words, as stored on Export.options ("Done images only",
    "accepted annotations only", "val split 10% (seed 0)", ...): the common ones, then the
    format's own. Options stored before a choice existed read as what was written then."""
    fmt = FORMATS.get(name)
    data = dict(data or {})
    images = dict(OPTION_SPECS["images"].choices).get(data.get("images", "all"), "All images")
    words = [
        images if images != "Done only" else "Done images only",
        "accepted annotations + proposals"
        if "proposed" in (data.get("states") or ())
        else "accepted annotations only",
        "with images without annotations (negatives)"
        if data.get("include_empty", True)
        else "only images with annotations",
    ]
    if data.get("class_ids"):
        words.append(f"{len(data['class_ids'])} class(es)")
    if fmt is None:
        return words
    for spec in fmt.option_specs():
        value = data.get(spec.name, fmt.default(spec.name))
        if spec.name == "val_ratio":
            if data.get("val_is_train"):
                continue
            words.append(
                f"val split {float(value) * 100:g}% (seed {data.get('seed', 0)})" if value else "no val split"
            )
        elif spec.name == "seed":
            continue
        elif spec.kind == "bool":
            if value:
                words.append(spec.label[0].lower() + spec.label[1:])
        elif spec.kind == "choice":
            words.append(f"{spec.label.lower()}: {dict(spec.choices).get(value, value)}")
    return words


# Import ----------------------------------------------------------------------------------------


def import_choices() -> list[tuple[str, str]]:
    """(import name, label) of every readable format, one per reader name, in registry order."""
    choices: dict[str, str] = {}
    for f in FORMATS.values():
        if f.read is not None:
            choices.setdefault(f.import_name, f.import_label)
    return list(choices.items())


def import_names() -> list[str]:
    """Every name an import accepts: the import names, then the formats' own names."""
    names = dict.fromkeys(name for name, _ in import_choices())
    names.update(dict.fromkeys(f.name for f in FORMATS.values() if f.read is not None))
    return list(names)


def import_accept() -> str:
    """The file input's accept attribute for every readable format (".json,.zip")."""
    extensions = {e for f in FORMATS.values() if f.read is not None for e in f.extensions()}
    return ",".join(f".{e}" for e in sorted(extensions))


def import_format(name: str) -> Format:
    """The format to read a file as, by import name ("yolo") or format name ("yolo_detect");
    FormatError naming the choices when there is none."""
    for f in FORMATS.values():
        if f.read is not None and name in (f.import_name, f.name):
            return f
    choices = ", ".join(n for n, _ in import_choices())
    raise FormatError(f"Unknown import format {name!r}; use one of: {choices}.")
