"""A dataset format for the registry test, written as a new format would be: this one module (a
writer and a reader) plus one registry entry (the `dummy_format` fixture of
test_format_registry.py). CSV, one line per annotation: file name, class name, x, y, w, h."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import BinaryIO

from labeling.formats.base import FormatError, Progress, Source
from labeling.formats.parsed import ParsedAnnotation, ParsedDataset, ParsedImage, read_capped

HEADER = ["file_name", "class", "x", "y", "w", "h"]


def write(source: Source, path: Path, progress: Progress) -> tuple[int, int]:
    names = {c.id: c.name for c in source.classes}
    image_count = annotation_count = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for images, by_image in source.chunks():
            for image in images:
                for ann in by_image.get(image.id, ()):
                    writer.writerow([image.name, names[ann.class_id], ann.x, ann.y, ann.w, ann.h])
                    annotation_count += 1
            image_count += len(images)
            progress(image_count, annotation_count)
    return image_count, annotation_count


def read(fileobj: BinaryIO, name: str) -> ParsedDataset:
    rows = list(csv.reader(io.StringIO(read_capped(fileobj, what=name).decode("utf-8"))))
    if not rows or rows[0] != HEADER:
        raise FormatError(f"{name}: the first line must be {','.join(HEADER)}.")
    dataset = ParsedDataset()
    seen: set[str] = set()
    for number, row in enumerate(rows[1:], start=2):
        location = f"{name} line {number}"
        try:
            file_name, class_name, x, y, w, h = row
            box = (float(x), float(y), float(w), float(h))
        except ValueError:  # not six fields, or not numbers
            dataset.error(location, "expected file_name, class, x, y, w, h.")
            continue
        if file_name not in seen:
            seen.add(file_name)
            dataset.images.append(ParsedImage(key=file_name, name=file_name, location=location))
        dataset.annotations.append(
            ParsedAnnotation(image_key=file_name, class_name=class_name, location=location, box=box)
        )
    return dataset
