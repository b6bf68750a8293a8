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
from .base import ExportOptions, FormatError, Progress, Source
from .parsed import ParsedDataset

Writer = Callable[[Source, Path, Progress], tuple[int, int]]
Reader = Callable[[BinaryIO, str], ParsedDataset]

NAME_MAX_LENGTH = 16  # Export.format's max_length
OPTIONS = frozenset({"zip_images", "rle", "val_ratio", "seed"})  # beyond states, class_ids, include_empty


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
    import_name: str = ""  # "" → name; formats sharing a reader share it
    import_label: str = ""  # "" → label; the import form's and the API's choice label

    def __post_init__(self) -> None:
        if not 0 < len(self.name) <= NAME_MAX_LENGTH:
            raise ValueError(f"A format name has 1 to {NAME_MAX_LENGTH} characters: {self.name!r}.")
        if self.write is None and self.read is None:
            raise ValueError(f"Format {self.name!r} has neither a writer nor a reader.")
        if not self.options <= OPTIONS:
            raise ValueError(f"Format {self.name!r}: unknown option(s) {sorted(self.options - OPTIONS)}.")
        object.__setattr__(self, "import_name", self.import_name or self.name)
        object.__setattr__(self, "import_label", self.import_label or self.label)

    def export_extension(self, options: ExportOptions) -> str:
        """The export file's extension under these options."""
        return "zip" if "zip_images" in self.options and options.zip_images else self.extension

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
    options=frozenset({"zip_images", "rle"}),
    import_label="COCO JSON (.json, or a .zip with the JSON and images/)",
)
YOLO_DETECT = Format(
    "yolo_detect",
    "YOLO detect",
    "zip",
    write=yolo.write_detect,
    read=yolo_import.read,
    options=frozenset({"val_ratio", "seed"}),
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
        replace(YOLO_DETECT, name="yolo_segment", label="YOLO segment", write=yolo.write_segment),
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


def option_formats() -> dict[str, str]:
    """Per format-specific option, the labels of the formats that read it ("rle" → "COCO JSON")."""
    return {
        option: ", ".join(f.label for f in FORMATS.values() if f.write is not None and option in f.options)
        for option in sorted(OPTIONS)
    }


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
