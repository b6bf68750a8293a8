"""What the readers (*_import.py) produce — a ParsedDataset of images and annotations, each with
its location in the file for the messages — and the helpers they share to read files and
archives safely. Nothing here touches the database: labeling.services.imports matches a parsed
dataset to a project and writes it.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import numpy as np
from django.conf import settings

from ..ingest import IngestError, Limits, iter_zip
from .base import FormatError

# The readers' output ---------------------------------------------------------------------------


@dataclass
class ParsedImage:
    """An image named by the file. `key` is the reader's own id for it (COCO id, YOLO stem...)."""

    key: Any
    name: str  # file name as written in the file (matched by basename)
    location: str
    data: bytes | None = None  # the image's bytes when the archive brings them along
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

    def error(self, where: str, what: str) -> None:
        self.errors.append((where, what))


# Reading files ---------------------------------------------------------------------------------


def read_capped(fileobj: BinaryIO, *, what: str) -> bytes:
    """The whole file, refused past LABELGPT_MAX_UPLOAD_BYTES."""
    limit = settings.LABELGPT_MAX_UPLOAD_BYTES
    if hasattr(fileobj, "seek"):
        fileobj.seek(0)
    data = fileobj.read(limit + 1)
    if len(data) > limit:
        raise FormatError(f"{what}: the file is over the limit of {limit / 1e6:.0f} MB.")
    return data


@dataclass
class ZipContents:
    """The files of an archive by their name inside it: images (bytes read by iter_zip, with its
    caps) and the text files a reader asked for."""

    files: dict[str, bytes]
    images: set[str]  # names among `files` that look like images


def read_zip(fileobj: BinaryIO, *, want: Callable[[str], bool], limits: Limits | None = None) -> ZipContents:
    """Read an archive safely (labeling.ingest.iter_zip: no absolute paths, "..", symlinks, zip
    bombs); FormatError naming the first refused entries. Non-image entries are read only when
    `want(name)`, each capped by LABELGPT_MAX_UPLOAD_BYTES, all of them by the archive's limit."""
    limits = limits or Limits.from_settings()
    size = fileobj.seek(0, os.SEEK_END)
    if size > settings.LABELGPT_MAX_UPLOAD_BYTES:
        raise FormatError(
            f"The archive is {size / 1e6:.0f} MB; "
            f"the limit is {settings.LABELGPT_MAX_UPLOAD_BYTES / 1e6:.0f} MB."
        )
    fileobj.seek(0)
    files: dict[str, bytes] = {}
    images: set[str] = set()
    wanted: list[str] = []
    refused: list[str] = []
    try:
        for entry in iter_zip(fileobj, limits=limits):
            if entry.error:
                refused.append(f"{entry.name}: {entry.error}")
            elif entry.data is not None:
                files[entry.name] = entry.data
                images.add(entry.name)
            elif entry.skipped == "Not an image file." and want(entry.name):
                wanted.append(entry.name)
    except IngestError as exc:
        raise FormatError(str(exc)) from exc
    if refused:
        raise FormatError("The archive is refused: " + "; ".join(refused[:5]))
    total = sum(len(v) for v in files.values())
    cap = settings.LABELGPT_MAX_UPLOAD_BYTES
    fileobj.seek(0)
    with zipfile.ZipFile(fileobj) as archive:
        for name in wanted:
            try:
                with archive.open(name) as member:
                    data = member.read(cap + 1)  # never trust the declared size
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, EOFError) as exc:
                raise FormatError(f"{name}: cannot read this entry of the archive ({exc}).") from exc
            total += len(data)
            if len(data) > cap or total > limits.zip_max_total_bytes:
                raise FormatError(
                    f"{name}: the archive unpacks to more than the size limit (zip bomb protection)."
                )
            files[name] = data
    return ZipContents(files=files, images=images)


def is_zip(fileobj: BinaryIO) -> bool:
    fileobj.seek(0)
    result = zipfile.is_zipfile(fileobj)
    fileobj.seek(0)
    return result


def basename(name: str) -> str:
    return PurePosixPath(str(name).replace("\\", "/")).name


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
