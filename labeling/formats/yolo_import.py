"""Read a YOLO detect / segment zip (Ultralytics layout, see base.py) into a ParsedDataset.

data.yaml (at the root or in one top folder) names the classes by index ("names": a mapping
{index: name} or a list). Label files are labels/[<split>/]<stem>.txt; their images are
images/[<split>/]<stem>.<ext> in the archive (brought along) or, when the archive has none,
the project's image with that stem. Lines: "cls cx cy w h" (detect) or "cls x1 y1 x2 y2 ..."
(segment, one part per line: each line becomes one annotation), all normalised to [0, 1].
"""

from __future__ import annotations

import math
import os
from typing import BinaryIO

import yaml

from .base import FormatError
from .parsed import ParsedAnnotation, ParsedDataset, ParsedImage, basename, is_zip, open_archive, read_entry

NORMALISED_TOLERANCE = 1e-6
# Numbers on one label line (as labeling.models.MAX_POLYGON_VALUES, which the formats cannot
# import): a longer line is refused before any of it is converted. A number has at most 32
# characters ("0.123456789012345678" is 20).
MAX_LINE_VALUES = 200_000
MAX_NUMBER_CHARS = 32


def _names(data: bytes, where: str) -> dict[int, str]:
    try:
        document = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FormatError(f"{where}: not UTF-8 text.") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise FormatError(f"{where}: malformed YAML{position}: {getattr(exc, 'problem', exc)}.") from exc
    if not isinstance(document, dict) or "names" not in document:
        raise FormatError(f'{where}: needs "names": the class names by index.')
    names = document["names"]
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise FormatError(f"{where}: names must be a list or a mapping {{index: name}}.")
    out = {}
    for index, name in names.items():
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise FormatError(f"{where}: names: {index!r:.40} is not a class index (0, 1, ...).")
        if not isinstance(name, str | int | float) or not str(name).strip():
            raise FormatError(f"{where}: names[{index}] must be a non-empty name.")
        out[index] = str(name).strip()
    return out


def _relative_key(name: str, root: str, folder: str) -> str | None:
    """'images/train/cat.jpg' → 'train/cat' (for folder 'images'); None when not under it."""
    relative = name[len(root) :] if name.startswith(root) else None
    if relative is None:
        return None
    parts = relative.split("/")
    if folder not in parts[:-1]:
        return None
    after = parts[parts.index(folder) + 1 :]
    return os.path.splitext("/".join(after))[0]


def read(fileobj: BinaryIO, name: str) -> ParsedDataset:
    """The YOLO reader, detect and segment alike (the registry's entries for "yolo_detect" and
    "yolo_segment", imported as "yolo")."""
    if not is_zip(fileobj):
        raise FormatError(f"{name}: a YOLO dataset is a .zip archive (data.yaml, images/, labels/).")
    archive = open_archive(fileobj)
    yamls = sorted(
        (n for n in archive.names if basename(n).lower() in ("data.yaml", "data.yml")),
        key=lambda n: (n.count("/"), n),
    )
    if not yamls:
        raise FormatError(f"{name}: no data.yaml in the archive (it names the classes).")
    root = yamls[0][: -len(basename(yamls[0]))]
    if root.count("/") > 1:
        raise FormatError(f"{name}: data.yaml must be at the root of the archive or in one top folder.")
    names = _names(read_entry(archive, yamls[0]), yamls[0])
    dataset = ParsedDataset(archive=archive)

    images: dict[str, str] = {}  # key (split/stem) → entry name
    by_stem: dict[str, list[str]] = {}
    for entry in sorted(archive.images):
        key = _relative_key(entry, root, "images")
        if key is None:
            continue
        images[key] = entry
        by_stem.setdefault(os.path.basename(key), []).append(entry)
    labels = {}
    for entry in sorted(archive.names):
        if entry.lower().endswith(".txt"):
            key = _relative_key(entry, root, "labels")
            if key is not None:
                labels[key] = entry
    if not labels and not images:
        raise FormatError(f"{name}: no labels/*.txt and no images/ in the archive.")

    for key in sorted(set(labels) | set(images)):
        entry = images.get(key)
        if entry is None:  # a label file whose image is elsewhere in the archive (same stem)
            candidates = by_stem.get(os.path.basename(key), [])
            entry = candidates[0] if len(candidates) == 1 else None
        if entry is not None:
            image = ParsedImage(key=key, name=basename(entry), location=entry, member=entry)
        else:
            image = ParsedImage(key=key, name=os.path.basename(key), location=labels[key], by_stem=True)
        dataset.images.append(image)
        if key in labels:
            _parse_labels(read_entry(archive, labels[key]), labels[key], key, names, dataset)
    return dataset


def _parse_labels(data: bytes, where: str, key: str, names: dict[int, str], dataset: ParsedDataset) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        dataset.error(where, "not UTF-8 text.")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split(maxsplit=MAX_LINE_VALUES + 1)
        if not tokens:
            continue
        location = f"{where} line {number}"
        if len(tokens) > MAX_LINE_VALUES + 1:
            dataset.error(location, f"more than {MAX_LINE_VALUES} numbers on one line.")
            continue
        if max(map(len, tokens)) > MAX_NUMBER_CHARS:
            dataset.error(location, f"a number longer than {MAX_NUMBER_CHARS} characters.")
            continue
        try:
            cls = int(tokens[0])
            values = [float(t) for t in tokens[1:]]
        except ValueError:
            dataset.error(location, f"expected a class index and numbers, got {line.strip()[:60]!r}.")
            continue
        if cls not in names:
            dataset.error(
                location, f"class index {cls} is not in data.yaml's names ({min(names)}–{max(names)})."
            )
            continue
        if len(values) == 4:
            kind = "box"
        elif len(values) >= 6 and len(values) % 2 == 0:
            kind = "polygon"
        else:
            dataset.error(
                location,
                f"expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...', got {len(values)} numbers.",
            )
            continue
        bad = [
            v
            for v in values
            if not math.isfinite(v) or v < -NORMALISED_TOLERANCE or v > 1 + NORMALISED_TOLERANCE
        ]
        if bad:
            dataset.error(location, f"normalised coordinates must be in [0, 1] (got {bad[0]:g}).")
            continue
        if kind == "box":
            cx, cy, w, h = values
            annotation = ParsedAnnotation(
                image_key=key,
                class_name=names[cls],
                location=location,
                box=(cx - w / 2, cy - h / 2, w, h),
                normalized=True,
            )
        else:
            annotation = ParsedAnnotation(
                image_key=key, class_name=names[cls], location=location, polygons=[[values]], normalized=True
            )
        dataset.annotations.append(annotation)
