"""Helpers for the import tests: images in a project, archives, and "nothing was written" checks."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from django.conf import settings

from labeling.models import Annotation, Image, LabelClass
from labeling.services.images import images_ingest
from labeling.services.imports import annotations_import
from tests.conftest import image_bytes


def png(size=(64, 48), color=(10, 20, 30)) -> bytes:
    return image_bytes("PNG", size=size, color=color)


def add_images(project, specs) -> list[Image]:
    """specs: (name, (width, height)) pairs; each image gets different bytes."""
    files = [
        (name, io.BytesIO(png(size, color=(i * 7 % 256, 40, 90)))) for i, (name, size) in enumerate(specs)
    ]
    report = images_ingest(project=project, files=files)
    assert not report.errors and not report.duplicates, report
    by_id = {pk: name for name, pk in report.created}
    return sorted(
        Image.objects.filter(pk__in=by_id), key=lambda im: [n for n, _ in specs].index(by_id[im.pk])
    )


def zip_bytes(entries: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def do_import(project, data: bytes | str | dict, *, format: str, user=None, name=None, create_classes=False):
    if isinstance(data, dict):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    name = name or {"coco": "dataset.json", "yolo": "yolo.zip", "voc": "voc.zip"}[format]
    return annotations_import(
        project=project,
        fileobj=io.BytesIO(data),
        name=name,
        format=format,
        user=user,
        create_classes=create_classes,
    )


def media_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def snapshot(project) -> dict:
    """What an import may change: rows in the project, and the files in MEDIA_ROOT."""
    return {
        "annotations": Annotation.objects.filter(image__project=project).count(),
        "images": Image.objects.filter(project=project).count(),
        "classes": LabelClass.objects.filter(project=project).count(),
        "files": media_files(),
    }


def errors_text(report) -> str:
    return "\n".join(f"{where}: {what}" for where, what in report.errors)


def disk(height: int, width: int, cy: float, cx: float, r: float, hole: float = 0.0) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    d2 = (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2
    mask = d2 <= r * r
    if hole:
        mask &= d2 > hole * hole
    return mask
