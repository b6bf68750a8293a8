"""YOLO export, Ultralytics layout (conventions in base.py): a zip of data.yaml, images/ and
labels/ (with images/train, images/val, ... when there is a val split), streamed by chunks."""

from __future__ import annotations

import zipfile
from pathlib import Path

import yaml

from inference.masks import mask_to_polygons, rle_to_mask

from .base import AnnotationRow, ImageRow, Progress, Source, copy_image, stem


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


def segment_lines(index: int, ann: AnnotationRow, image: ImageRow) -> list[str]:
    """``cls x1 y1 x2 y2 ...``, one line per part (outer rings), normalised; the box's corners
    for an annotation without a mask."""
    polygons = ann.polygons
    if not polygons and ann.mask:
        polygons = mask_to_polygons(rle_to_mask(ann.mask))
    rings = [part[0] for part in polygons or () if part and len(part[0]) >= 6]
    if not rings:
        x, y, w, h = ann.x, ann.y, ann.w, ann.h
        rings = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    width, height = image.width, image.height
    lines = []
    for ring in rings:
        values = [_num(v / (width if i % 2 == 0 else height)) for i, v in enumerate(ring)]
        lines.append(f"{index} " + " ".join(values))
    return lines


def data_yaml(source: Source, split: bool) -> str:
    data = {
        "path": ".",
        "train": "images/train" if split else "images",
        "val": "images/val" if split else "images",
        "nc": len(source.all_classes),
        "names": {c.index: c.name for c in source.all_classes},
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _write(source: Source, path: Path, progress: Progress, segment: bool) -> tuple[int, int]:
    val_ids = source.val_ids()
    split = source.options.val_ratio > 0
    index_of = {c.id: c.index for c in source.all_classes}
    image_count = annotation_count = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        zf.writestr("data.yaml", data_yaml(source, split))
        for images, by_image in source.chunks():
            for image in images:
                folder = ("val/" if image.id in val_ids else "train/") if split else ""
                lines = []
                for ann in by_image.get(image.id, ()):
                    index = index_of[ann.class_id]
                    if segment:
                        lines.extend(segment_lines(index, ann, image))
                    else:
                        lines.append(detect_line(index, ann, image))
                    annotation_count += 1
                zf.writestr(f"labels/{folder}{stem(image.name)}.txt", "".join(f"{line}\n" for line in lines))
                copy_image(zf, image, f"images/{folder}{image.name}")
            image_count += len(images)
            progress(image_count, annotation_count)
    return image_count, annotation_count


def write_detect(source: Source, path: Path, progress: Progress) -> tuple[int, int]:
    return _write(source, path, progress, segment=False)


def write_segment(source: Source, path: Path, progress: Progress) -> tuple[int, int]:
    return _write(source, path, progress, segment=True)
