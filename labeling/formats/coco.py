"""COCO export (conventions in base.py), streamed: the "images" array is written as the chunks
come while the annotations are spooled to a temporary file, then copied after it. Nothing the
size of the project is ever held in memory.

Every entry is a dict built by `annotation_entry` and serialised by orjson.dumps. The rows come
with their mask and polygons as the stored JSON text (Source.chunks(raw_json=True)), decoded by
orjson.loads: decoding and encoding the polygons, most of an export's time with the json module,
stay cheap. Whether a mask has holes is read from the decoded polygons (parts → rings), never
from the JSON text.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

import orjson
from pycocotools import mask as coco_mask

from inference.masks import mask_to_polygons, mask_to_rle, polygons_to_mask, rle_to_mask

from .base import AnnotationRow, ImageRow, Progress, Source, copy_image

MIN_IOU = 0.99


def _rle_bytes(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed: compress it
        return coco_mask.frPyObjects({"size": list(rle["size"]), "counts": counts}, *rle["size"])
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": list(rle["size"]), "counts": counts}


def _rle_str(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(v) for v in rle["size"]], "counts": counts}


def _outer_rings(polygons: list) -> list[list[float]]:
    return [part[0] for part in polygons if part and len(part[0]) >= 6]


def _faithful(outer: list[list[float]], mask_rle: dict, mask_area: float) -> bool:
    """Do the outer rings rasterise to the mask with IoU ≥ MIN_IOU?"""
    h, w = mask_rle["size"]
    rles = coco_mask.frPyObjects(outer, h, w)
    poly_rle = rles[0] if len(rles) == 1 else coco_mask.merge(rles)
    poly_area = float(coco_mask.area(poly_rle))
    inter = float(coco_mask.area(coco_mask.merge([poly_rle, mask_rle], intersect=True)))
    union = poly_area + mask_area - inter
    return union == 0 or inter / union >= MIN_IOU


def box_polygon(ann: AnnotationRow) -> list[list[float]]:
    """A box as one 4-point polygon: its corners clockwise from the top-left one."""
    x, y, w, h = ann.x, ann.y, ann.w, ann.h
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def segmentation(
    ann: AnnotationRow, height: int, width: int, *, rle: bool
) -> tuple[list | dict | None, float]:
    """(segmentation, area) for an annotation: None (no key; the caller decides: see
    `annotation_entry`) and w × h for a box only; polygons (outer rings) when faithful to the mask
    (no holes, IoU ≥ 0.99); else the mask's compressed RLE. Never [] (pycocotools' segm
    evaluation cannot rasterise an empty list)."""
    mask, polygons = ann.mask, ann.polygons
    if not mask and not polygons:
        return None, ann.w * ann.h
    if mask:
        mask_rle = _rle_bytes(mask)
        area = float(coco_mask.area(mask_rle))
        if rle:
            return _rle_str(mask_rle), area
        if polygons is None:
            polygons = mask_to_polygons(rle_to_mask(mask))
        outer = _outer_rings(polygons)
        if outer and not any(len(part) > 1 for part in polygons) and _faithful(outer, mask_rle, area):
            return outer, area
        return _rle_str(mask_rle), area
    # Polygons without a stored mask (drawn by hand).
    holes = any(len(part) > 1 for part in polygons)
    if holes or rle:
        pixels = polygons_to_mask(polygons, height, width)
        return mask_to_rle(pixels), float(pixels.sum())
    outer = _outer_rings(polygons)
    if not outer:
        return None, ann.w * ann.h
    area = float(coco_mask.area(coco_mask.merge(coco_mask.frPyObjects(outer, height, width))))
    return outer, area


def image_entry(image: ImageRow) -> dict:
    return {"id": image.id, "file_name": image.name, "width": image.width, "height": image.height}


def annotation_entry(
    ann: AnnotationRow, image: ImageRow, rle: bool, box_segmentation: str = "polygon"
) -> dict:
    """One annotation as a COCO dict (mask and polygons decoded: see `decoded`). A box without a
    mask: its box as a 4-point polygon (box_segmentation="polygon") or no "segmentation" key
    ("none")."""
    seg, area = segmentation(ann, image.height, image.width, rle=rle)
    entry = {
        "id": ann.id,
        "image_id": ann.image_id,
        "category_id": ann.class_id,
        "bbox": [ann.x, ann.y, ann.w, ann.h],
        "area": area,
        "iscrowd": 0,
    }
    if seg is None and box_segmentation == "polygon":
        seg = box_polygon(ann)
    if seg is not None:
        entry["segmentation"] = seg
    if ann.score is not None:
        entry["score"] = ann.score
    return entry


def decoded(ann: AnnotationRow) -> AnnotationRow:
    """A row of Source.chunks(raw_json=True) with its mask and polygons decoded (by orjson, which
    parses the polygons' numbers several times faster than the json module)."""
    return ann._replace(
        mask=orjson.loads(ann.mask) if ann.mask is not None else None,
        polygons=orjson.loads(ann.polygons) if ann.polygons is not None else None,
    )


def write_json(source: Source, out: BinaryIO, progress: Progress) -> tuple[int, int]:
    """Write the COCO JSON to the binary file `out` (one image or annotation a line); returns
    (images, annotations)."""
    rle = source.options.rle
    box_segmentation = source.options.box_segmentation
    dumps = orjson.dumps
    image_count = annotation_count = 0
    header = {
        "info": {
            "description": source.project.name,
            "version": "1.0",
            "date_created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "categories": [{"id": c.id, "name": c.name, "supercategory": ""} for c in source.classes],
    }
    with tempfile.TemporaryFile("w+b") as spool:
        out.write(dumps(header)[:-1] + b',"images":[')
        # Each entry goes straight to its file: orjson's bytes keep a few KB of spare capacity
        # each, so a chunk's entries held in a list would take ~20 times their size.
        for images, by_image in source.chunks(raw_json=True):
            for image in images:
                out.write(b",\n" if image_count else b"\n")
                out.write(dumps(image_entry(image)))
                image_count += 1
                for ann in by_image.get(image.id, ()):
                    spool.write(b",\n" if annotation_count else b"\n")
                    spool.write(dumps(annotation_entry(decoded(ann), image, rle, box_segmentation)))
                    annotation_count += 1
            progress(image_count, annotation_count)
        out.write(b'\n],\n"annotations":[\n')
        spool.seek(0)
        shutil.copyfileobj(spool, out, 1 << 20)
        out.write(b"\n]}\n")
    return image_count, annotation_count


def write(source: Source, path: Path, progress: Progress) -> tuple[int, int]:
    """COCO JSON at `path`, or with zip_images a zip of annotations.json and images/<file_name>."""
    if not source.options.zip_images:
        with open(path, "wb") as out:
            return write_json(source, out, progress)
    with tempfile.TemporaryDirectory() as folder:
        json_path = Path(folder) / "annotations.json"
        with open(json_path, "wb") as out:
            counts = write_json(source, out, progress)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            zf.write(json_path, "annotations.json")
            for images, _ in source.chunks():
                for image in images:
                    copy_image(zf, image, f"images/{image.name}")
    return counts
