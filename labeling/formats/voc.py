"""Pascal VOC export (conventions in base.py): a zip of Annotations/, ImageSets/Main/,
JPEGImages/ and, when masks exist, SegmentationObject/ and SegmentationClass/ palette PNGs."""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image as PILImage

from inference.masks import stored_mask

from .base import AnnotationRow, ImageRow, Progress, Source, copy_image, stem, voc_palette

MAX_OBJECTS = 254  # SegmentationObject values 1..254 (255 is VOC's "boundary")


def voc_box(ann: AnnotationRow, image: ImageRow) -> tuple[int, int, int, int]:
    """1-based inclusive pixel corners: floor(x) + 1, floor(y) + 1, ceil(x + w), ceil(y + h)."""
    xmin = min(image.width, math.floor(ann.x) + 1)
    ymin = min(image.height, math.floor(ann.y) + 1)
    xmax = max(xmin, min(image.width, math.ceil(ann.x + ann.w - 1e-9)))
    ymax = max(ymin, min(image.height, math.ceil(ann.y + ann.h - 1e-9)))
    return xmin, ymin, xmax, ymax


def _mask(ann: AnnotationRow, image: ImageRow) -> np.ndarray | None:
    return stored_mask(ann.mask, ann.polygons, image.height, image.width)


def annotation_xml(image: ImageRow, anns: list[AnnotationRow], names: dict[int, str], segmented: bool) -> str:
    objects = []
    for ann in anns:
        xmin, ymin, xmax, ymax = voc_box(ann, image)
        objects.append(
            "  <object>\n"
            f"    <name>{escape(names[ann.class_id])}</name>\n"
            "    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n    <difficult>0</difficult>\n"
            f"    <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>\n"
            "  </object>\n"
        )
    return (
        "<annotation>\n  <folder>VOC</folder>\n"
        f"  <filename>{escape(image.name)}</filename>\n"
        f"  <size><width>{image.width}</width><height>{image.height}</height><depth>3</depth></size>\n"
        f"  <segmented>{int(segmented)}</segmented>\n" + "".join(objects) + "</annotation>\n"
    )


def _png(pixels: np.ndarray, palette: list[int]) -> bytes:
    image = PILImage.fromarray(pixels, mode="P")
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write(source: Source, path: Path, progress: Progress) -> tuple[int, int]:
    val_ids = source.val_ids()
    names = {c.id: c.name for c in source.all_classes}
    index_of = {c.id: c.index for c in source.all_classes}
    palette = voc_palette()
    image_count = annotation_count = 0
    sets: dict[str, list[str]] = {"train": [], "val": []}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for images, by_image in source.chunks():
            for image in images:
                anns = by_image.get(image.id, [])
                name = stem(image.name)
                masks = [_mask(ann, image) for ann in anns]
                segmented = any(m is not None for m in masks)
                zf.writestr(f"Annotations/{name}.xml", annotation_xml(image, anns, names, segmented))
                copy_image(zf, image, f"JPEGImages/{image.name}")
                if segmented:
                    objects = np.zeros((image.height, image.width), dtype=np.uint8)
                    classes = np.zeros((image.height, image.width), dtype=np.uint8)
                    for number, (ann, pixels) in enumerate(zip(anns, masks, strict=True), start=1):
                        if pixels is None or number > MAX_OBJECTS:
                            continue
                        objects[pixels] = number
                        classes[pixels] = index_of[ann.class_id] + 1
                    zf.writestr(f"SegmentationObject/{name}.png", _png(objects, palette))
                    zf.writestr(f"SegmentationClass/{name}.png", _png(classes, palette))
                sets["val" if image.id in val_ids else "train"].append(name)
                annotation_count += len(anns)
            image_count += len(images)
            progress(image_count, annotation_count)
        for split in ("train", "val"):
            zf.writestr(f"ImageSets/Main/{split}.txt", "".join(f"{n}\n" for n in sets[split]))
        zf.writestr("ImageSets/Main/trainval.txt", "".join(f"{n}\n" for n in sets["train"] + sets["val"]))
    return image_count, annotation_count
