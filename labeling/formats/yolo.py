"""YOLO export, Ultralytics layout (conventions in base.py): a zip of data.yaml, images/ and
labels/ (images/train and images/val, or images/train alone when val = train was asked for),
streamed by chunks."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import yaml

from inference.masks import mask_to_polygons, rle_to_mask

from .base import AnnotationRow, FormatError, ImageRow, Progress, Source, copy_image, stem, val_split


def _num(value: float) -> str:
    return "%.10g" % min(1.0, max(0.0, value))  # noqa: UP031 (a fixed format for every number)


def detect_line(index: int, ann: AnnotationRow, image: ImageRow) -> str:
    """``cls cx cy w h``, normalised by the image's width and height."""
    width, height = image.width, image.height
    return " ".join(
        [
            str(index),
            _num((ann.x + ann.w / 2) / width),
            _num((ann.y + ann.h / 2) / height),
            _num(ann.w / width),
            _num(ann.h / height),
        ]
    )


def ring_area(ring: list[float]) -> float:
    """The area of a ring [x0, y0, x1, y1, ...] (shoelace, absolute)."""
    xs, ys = np.asarray(ring[0::2], dtype=float), np.asarray(ring[1::2], dtype=float)
    return abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))) / 2


CLOSEST_ROWS = 256  # rows of a's distance matrix at a time: memory stays 256 × len(b) floats


def closest_vertices(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(i, j): the vertex a[i] and the vertex b[j] closest to each other ((n, 2) arrays; the
    first such pair in row order on a tie)."""
    best, found = np.inf, (0, 0)
    for start in range(0, len(a), CLOSEST_ROWS):
        rows = a[start : start + CLOSEST_ROWS]
        distances = (rows[:, 0, None] - b[None, :, 0]) ** 2 + (rows[:, 1, None] - b[None, :, 1]) ** 2
        flat = int(np.argmin(distances))
        i, j = divmod(flat, len(b))
        if distances[i, j] < best:
            best, found = float(distances[i, j]), (start + i, j)
    return found


def merge_rings(rings: list[list[float]]) -> list[float]:
    """Several parts as ONE ring, the way Ultralytics' converters join them: part k is bridged to
    part k + 1 by the shortest segment between their vertices, and the walk goes out along each
    bridge and back along it, so the bridges enclose no area. The walk: part 0 from its first
    vertex; on reaching the vertex bridged to the next part, cross, walk that part all the way
    round from its bridge vertex (taking its own bridge onwards the same way), come back round to
    it and cross back, then go on. Every vertex of every part is on the ring."""
    if len(rings) == 1:
        return list(rings[0])
    points = [np.asarray(ring, dtype=float).reshape(-1, 2) for ring in rings]
    exits, entries = [], [0]  # exits[k]: the vertex of part k bridged to part k + 1
    for k in range(len(points) - 1):
        i, j = closest_vertices(points[k], points[k + 1])
        exits.append(i)
        entries.append(j)
    out: list[np.ndarray] = []

    def walk(k: int, closed: bool) -> None:
        part, start = points[k], entries[k]
        order = [(start + step) % len(part) for step in range(len(part))]
        for index in order:
            out.append(part[index])
            if k < len(exits) and index == exits[k]:
                walk(k + 1, closed=True)
                out.append(part[index])
        if closed:  # back round to where this part was entered, then back over the bridge
            out.append(part[start])

    walk(0, closed=False)
    return [float(v) for v in np.asarray(out).reshape(-1)]


def segment_line(index: int, ann: AnnotationRow, image: ImageRow, parts: str = "merge") -> str:
    """``cls x1 y1 x2 y2 ...``: one line per instance, normalised. A mask in several parts is
    merged into one ring (`merge_rings`), or its largest part alone (parts="largest"); holes are
    left out (outer rings only); an annotation without a mask is its box's 4 corners."""
    polygons = ann.polygons
    if not polygons and ann.mask:
        polygons = mask_to_polygons(rle_to_mask(ann.mask))
    rings = [part[0] for part in polygons or () if part and len(part[0]) >= 6]
    if not rings:
        x, y, w, h = ann.x, ann.y, ann.w, ann.h
        ring = [x, y, x + w, y, x + w, y + h, x, y + h]
    elif parts == "largest":
        ring = max(rings, key=ring_area)
    else:
        ring = merge_rings(rings)
    width, height = image.width, image.height
    values = [_num(v / (width if i % 2 == 0 else height)) for i, v in enumerate(ring)]
    return f"{index} " + " ".join(values)


def data_yaml(source: Source, folders: tuple[str, str], comment: str) -> str:
    data = {
        "path": ".",
        "train": f"images/{folders[0]}",
        "val": f"images/{folders[1]}",
        "nc": len(source.all_classes),
        "names": {c.index: c.name for c in source.all_classes},
    }
    lines = "".join(f"# {line}\n" for line in comment.splitlines())
    return lines + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


USE_TRAIN = '"Use the training images for validation"'


def plan_split(source: Source) -> tuple[frozenset[int], tuple[str, str], str]:
    """(the val images, the (train, val) folders, data.yaml's comment); FormatError when the split
    would leave no val image or no training image (val = train only when asked explicitly)."""
    options = source.options
    if options.val_is_train:
        comment = (
            f"val = train, asked for explicitly ({USE_TRAIN}): no image is held out, so validation\n"
            "scores measure the fit to the training images, not how well the model generalises."
        )
        return frozenset(), ("train", "train"), comment
    if options.val_ratio <= 0:
        raise FormatError(
            f"YOLO needs validation images: give a val ratio above 0 (e.g. 0.1), or tick {USE_TRAIN}."
        )
    ids = source.image_ids()
    val = val_split(ids, options.val_ratio, options.seed)
    if not val:
        raise FormatError(
            f"A val ratio of {options.val_ratio:g} of {len(ids)} image(s) gives no validation image: "
            f"raise the ratio, export more images, or tick {USE_TRAIN}."
        )
    if len(val) == len(ids):
        raise FormatError(
            f"A val ratio of {options.val_ratio:g} of {len(ids)} image(s) leaves no training image: "
            f"lower the ratio, export more images, or tick {USE_TRAIN}."
        )
    comment = (
        f"{len(val)} of {len(ids)} images held out for validation (val ratio {options.val_ratio:g}, "
        f"seed {options.seed}):\nval and train are disjoint; the same seed gives the same split."
    )
    return val, ("train", "val"), comment


def check(source: Source) -> None:
    """Refuse, before anything is queued, an export whose split cannot be made (FormatError)."""
    plan_split(source)


def _write(source: Source, path: Path, progress: Progress, segment: bool) -> tuple[int, int]:
    val_ids, folders, comment = plan_split(source)
    index_of = {c.id: c.index for c in source.all_classes}
    parts = source.options.segment_parts
    image_count = annotation_count = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        zf.writestr("data.yaml", data_yaml(source, folders, comment))
        for images, by_image in source.chunks():
            for image in images:
                folder = folders[1] if image.id in val_ids else folders[0]
                lines = []
                for ann in by_image.get(image.id, ()):
                    index = index_of[ann.class_id]
                    if segment:
                        lines.append(segment_line(index, ann, image, parts))
                    else:
                        lines.append(detect_line(index, ann, image))
                    annotation_count += 1
                zf.writestr(f"labels/{folder}/{stem(image.name)}.txt", "".join(f"{line}\n" for line in lines))
                copy_image(zf, image, f"images/{folder}/{image.name}")
            image_count += len(images)
            progress(image_count, annotation_count)
    return image_count, annotation_count


def write_detect(source: Source, path: Path, progress: Progress) -> tuple[int, int]:
    return _write(source, path, progress, segment=False)


def write_segment(source: Source, path: Path, progress: Progress) -> tuple[int, int]:
    return _write(source, path, progress, segment=True)
