"""What the readers (*_import.py) produce — a ParsedDataset of images and annotations, each with
its location in the file for the messages — and the helpers they share to read files and
archives safely. Archives are read lazily: a reader reads the entries it parses, and an image
brought along is named by its entry (ParsedImage.member), which the import service reads when
it ingests it. Nothing here touches the database: labeling.services.imports matches a parsed
dataset to a project and writes it.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import numpy as np
from django.conf import settings

from ..ingest import IngestError, Limits, ZipArchive
from .base import FormatError

# The readers' output ---------------------------------------------------------------------------


@dataclass
class ParsedImage:
    """An image named by the file. `key` is the reader's own id for it (COCO id, YOLO stem...)."""

    key: Any
    name: str  # file name as written in the file (matched by basename)
    location: str
    member: str | None = None  # the archive entry of the image it brings along (read when ingested)
    width: int | None = None  # as declared by the file, checked when given
    height: int | None = None
    by_stem: bool = False  # match the project's images by stem (YOLO label files)


@dataclass
class ParsedAnnotation:
    image_key: Any
    class_name: str
    location: str
    box: tuple[float, float, float, float] | None = None  # x, y, w, h
    polygons: list | None = None  # parts → rings → [x0, y0, ...]
    rle: dict | None = None  # {"size": [h, w], "counts": str | list[int]}
    mask: np.ndarray | None = None  # a decoded mask (VOC PNGs)
    normalized: bool = False  # box and polygons divided by the image's width / height (YOLO)
    score: float | None = None


@dataclass
class ParsedDataset:
    images: list[ParsedImage] = field(default_factory=list)
    annotations: list[ParsedAnnotation] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (where, what)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)
    archive: ZipArchive | None = None  # where the images' `member`s are read from

    def error(self, where: str, what: str) -> None:
        self.errors.append((where, what))


# Reading files ---------------------------------------------------------------------------------


def read_capped(fileobj: BinaryIO, *, what: str) -> bytes:
    """The whole file, refused past LABELGPT_MAX_IMPORT_BYTES."""
    limit = settings.LABELGPT_MAX_IMPORT_BYTES
    if hasattr(fileobj, "seek"):
        fileobj.seek(0)
    data = fileobj.read(limit + 1)
    if len(data) > limit:
        raise FormatError(f"{what}: the file is over the limit of {limit / 1e6:.0f} MB.")
    return data


def open_archive(fileobj: BinaryIO, *, limits: Limits | None = None) -> ZipArchive:
    """The archive, read lazily (labeling.ingest.ZipArchive: no absolute paths, "..", symlinks,
    zip bombs); FormatError naming the refused entries. Readers read only the entries they need
    (`read_entry`) and name images by their entry (ParsedImage.member): the import service reads
    each image when it ingests it."""
    size = fileobj.seek(0, os.SEEK_END)
    if size > settings.LABELGPT_MAX_IMPORT_BYTES:
        raise FormatError(
            f"The archive is {size / 1e6:.0f} MB; "
            f"the limit is {settings.LABELGPT_MAX_IMPORT_BYTES / 1e6:.0f} MB."
        )
    fileobj.seek(0)
    try:
        return ZipArchive(fileobj, limits=limits or Limits.from_settings())
    except IngestError as exc:
        raise FormatError(str(exc)) from exc


def read_entry(archive: ZipArchive, name: str, *, max_bytes: int | None = None) -> bytes:
    """One entry's bytes (a text file: capped by LABELGPT_MAX_IMPORT_BYTES unless `max_bytes`
    says less); FormatError when the entry is refused (the whole import is)."""
    try:
        return archive.read(name, max_bytes=max_bytes or settings.LABELGPT_MAX_IMPORT_BYTES)
    except IngestError as exc:
        raise FormatError(str(exc)) from exc


def is_zip(fileobj: BinaryIO) -> bool:
    fileobj.seek(0)
    result = zipfile.is_zipfile(fileobj)
    fileobj.seek(0)
    return result


def basename(name: str) -> str:
    return PurePosixPath(str(name).replace("\\", "/")).name


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
