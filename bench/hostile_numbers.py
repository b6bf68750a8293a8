"""How fast hostile numbers are refused (issue 11, point 4: each under 100 ms), without HTTP or a
database: the API's JSON parser and the annotation serializer, the COCO and YOLO readers.

    .venv/bin/python bench/hostile_numbers.py            # median of 5 runs per case

Each line: the case, its median time in ms and the start of the refusal. The tests
(tests/labeling/test_hostile_numbers.py) check what is refused; this measures how fast.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
import zipfile
from pathlib import Path

# `python bench/x.py` puts bench/ first on sys.path, where bench/click.py would shadow the click
# package (Celery imports it): the repository goes there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup()

from rest_framework.exceptions import ParseError  # noqa: E402

from labeling.api import serializers as s  # noqa: E402
from labeling.api.parsers import LimitedJSONParser  # noqa: E402
from labeling.formats import coco_import, yolo_import  # noqa: E402
from labeling.formats.base import FormatError  # noqa: E402
from labeling.models import Image  # noqa: E402

RUNS = 5
IMAGE = Image(width=4000, height=3000)


class Geometry(s.Strict):
    """The annotation's fields that take many numbers (class_id would need the database)."""

    box = s.BoxField()
    polygons = s.PolygonsField(required=False)


def api_body(text: str) -> str:
    """Parse as the API does, then validate the geometry as an annotation create: the refusal."""
    try:
        data = LimitedJSONParser().parse(io.BytesIO(text.encode()), "application/json", {})
    except ParseError as exc:
        return str(exc.detail)
    serializer = Geometry(data=data, context={"image": IMAGE})
    serializer.is_valid()
    return str(serializer.errors) or "accepted"


def coco(text: str) -> str:
    try:
        coco_import.read(io.BytesIO(text.encode()), "d.json")
    except FormatError as exc:
        return str(exc)
    return "accepted"


def yolo_zip(line: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.yaml", "names: [cat]\n")
        archive.writestr("labels/a.txt", line)
    return buffer.getvalue()


def yolo(archive: bytes) -> str:
    dataset = yolo_import.read(io.BytesIO(archive), "y.zip")
    return "; ".join(what for _, what in dataset.errors) or "accepted"


BIG, HUGE = "1" * 400, "1" * 5000
POLYGON = ",".join(["1"] * 2_000_000)
COCO_HEAD = '{"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "cat"}], '
COCO_ANNOTATION = COCO_HEAD + '"annotations": [{"image_id": 1, "category_id": 1, '
CASES = {
    "API: 400-digit polygon value": (
        api_body,
        f'{{"box": [1, 1, 2, 2], "polygons": [[[{BIG}, 1, 2, 2, 3, 3]]]}}',
    ),
    "API: 5000-digit integer": (api_body, f'{{"box": [{HUGE}, 1, 2, 2]}}'),
    "API: [ nested 10^5 deep": (api_body, "[" * 100_000),
    "API: 2-million-value polygon": (
        api_body,
        f'{{"box": [1, 1, 2, 2], "polygons": [[[{POLYGON}]]]}}',
    ),
    "COCO: 400-digit bbox": (coco, COCO_ANNOTATION + f'"bbox": [{BIG}, 1, 2, 2]}}]}}'),
    "COCO: 400-digit score": (coco, COCO_ANNOTATION + f'"bbox": [1, 1, 2, 2], "score": {BIG}}}]}}'),
    "COCO: 5000-digit integer": (
        coco,
        f'{{"images": [{{"id": {HUGE}, "file_name": "a.png"}}], "categories": [], "annotations": []}}',
    ),
    "COCO: [ nested 10^5 deep": (coco, "[" * 100_000),
    "YOLO: 1-million-point line": (yolo, yolo_zip("0 " + " ".join(["0.5"] * 2_000_000) + "\n")),
}


def main() -> None:
    for name, (run, data) in CASES.items():
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            answer = run(data)
            times.append(time.perf_counter() - start)
        print(f"{name:32s} {statistics.median(times) * 1000:8.2f} ms   {answer[:90]}")


if __name__ == "__main__":
    main()
