"""COCO export (conventions in base.py), streamed: the "images" array is written as the chunks
come while the annotations are spooled to a temporary file, then copied after it. Nothing the
size of the project is ever held in memory.
"""

from __future__ import annotations

import datetime
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from inference.masks import mask_to_polygons, mask_to_rle, polygons_to_mask, rle_to_mask

from .base import AnnotationRow, ImageRow, copy_image

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
    return [[float(v) for v in part[0]] for part in polygons if part and len(part[0]) >= 6]


def segmentation(ann: AnnotationRow, height: int, width: int, *, rle: bool) -> tuple[list | dict, float]:
    """(segmentation, area) for an annotation: [] and w × h for a box only; polygons (outer rings)
    when faithful to the mask (no holes, IoU ≥ 0.99); else the mask's compressed RLE."""
    mask, polygons = ann.mask, ann.polygons
    if not mask and not polygons:
        return [], ann.w * ann.h
    if mask:
        mask_rle = _rle_bytes(mask)
        area = float(coco_mask.area(mask_rle))
        if rle:
            return _rle_str(mask_rle), area
        if polygons is None:
            polygons = mask_to_polygons(rle_to_mask(mask))
        outer = _outer_rings(polygons)
        if outer and not any(len(part) > 1 for part in polygons):
            h, w = mask_rle["size"]
            poly_rle = coco_mask.merge(coco_mask.frPyObjects(outer, h, w))
            both = coco_mask.area([poly_rle, mask_rle])
            inter = float(coco_mask.area(coco_mask.merge([poly_rle, mask_rle], intersect=True)))
            union = float(both[0] + both[1]) - inter
            if union == 0 or inter / union >= MIN_IOU:
                return outer, area
        return _rle_str(mask_rle), area
    # Polygons without a stored mask (drawn by hand).
    holes = any(len(part) > 1 for part in polygons)
    if holes or rle:
        pixels = polygons_to_mask(polygons, height, width)
        return mask_to_rle(pixels), float(pixels.sum())
    outer = _outer_rings(polygons)
    if not outer:
        return [], ann.w * ann.h
    area = float(coco_mask.area(coco_mask.merge(coco_mask.frPyObjects(outer, height, width))))
    return outer, area


# The fast path: mask and polygons as stored JSON text ------------------------------------------
#
# Decoding every polygon to Python floats and encoding it again is most of an export's time. In
# the polygons text with its spaces taken out, a part boundary reads "]],[[" and a ring boundary
# inside a part (a hole follows) reads "],[" alone: so a mask has holes exactly when "],[" occurs
# more often than "]],[[", and without holes the outer rings are the pieces between "]],[[".
# They go out as text, copied through; only the faithfulness check parses their numbers.


def _outer_rings_text(polygons_text: str) -> list[str] | None:
    """The outer rings' numbers ("x0,y0,x1,...") of a polygons text; None when a part has holes
    or the text is not the expected shape (the caller then decodes it)."""
    text = polygons_text.replace(" ", "")
    if text.count("],[") != text.count("]],[["):
        return None
    if text == "[]":
        return []
    if not (text.startswith("[[[") and text.endswith("]]]")) or "[[[" in text[1:]:
        return None
    return [ring for ring in text[3:-3].split("]],[[") if ring.count(",") >= 5 and "[" not in ring]


def _faithful(outer: list[np.ndarray], mask_rle: dict, mask_area: float) -> bool:
    h, w = mask_rle["size"]
    rles = coco_mask.frPyObjects(outer, h, w)
    poly_rle = rles[0] if len(rles) == 1 else coco_mask.merge(rles)
    poly_area = float(coco_mask.area(poly_rle))
    inter = float(coco_mask.area(coco_mask.merge([poly_rle, mask_rle], intersect=True)))
    union = poly_area + mask_area - inter
    return union == 0 or inter / union >= MIN_IOU


def segmentation_text(ann: AnnotationRow, height: int, width: int, *, rle: bool) -> tuple[str, float]:
    """`segmentation` for a row whose mask and polygons are JSON text: (segmentation JSON, area)."""
    mask_text = ann.mask if ann.mask != "null" else None
    polygons_text = ann.polygons if ann.polygons != "null" else None
    if mask_text is None or polygons_text is None:
        decoded = ann._replace(
            mask=json.loads(mask_text) if mask_text else None,
            polygons=json.loads(polygons_text) if polygons_text else None,
        )
        seg, area = segmentation(decoded, height, width, rle=rle)
        return json.dumps(seg), area
    mask = json.loads(mask_text)
    if not isinstance(mask.get("counts"), str):  # uncompressed RLE: the slow path
        seg, area = segmentation(
            ann._replace(mask=mask, polygons=json.loads(polygons_text)), height, width, rle=rle
        )
        return json.dumps(seg), area
    mask_rle = {"size": mask["size"], "counts": mask["counts"].encode("ascii")}
    area = float(coco_mask.area(mask_rle))
    if rle:
        return mask_text, area
    rings = _outer_rings_text(polygons_text)
    if rings is None:  # holes (or an unexpected shape): RLE, as the decoded path would
        decoded = ann._replace(mask=mask, polygons=json.loads(polygons_text))
        seg, area = segmentation(decoded, height, width, rle=rle)
        return json.dumps(seg), area
    if rings:
        outer = [np.array(ring.split(","), dtype=np.float64) for ring in rings]
        if _faithful(outer, mask_rle, area):
            return "[" + ",".join(f"[{ring}]" for ring in rings) + "]", area
    return mask_text, area


def annotation_json(ann: AnnotationRow, image: ImageRow, rle: bool) -> str:
    """One annotation as COCO JSON text, from a raw-JSON row (see ExportSource.chunks)."""
    seg, area = segmentation_text(ann, image.height, image.width, rle=rle)
    score = "" if ann.score is None else f', "score": {ann.score!r}'
    return (
        f'{{"id": {ann.id}, "image_id": {ann.image_id}, "category_id": {ann.class_id}, '
        f'"bbox": [{ann.x!r}, {ann.y!r}, {ann.w!r}, {ann.h!r}], "area": {area!r}, "iscrowd": 0, '
        f'"segmentation": {seg}{score}}}'
    )


def _image_entry(image: ImageRow) -> dict:
    return {"id": image.id, "file_name": image.name, "width": image.width, "height": image.height}


def annotation_entry(ann: AnnotationRow, image: ImageRow, rle: bool) -> dict:
    """One annotation as a COCO dict, from a decoded row (the reference for annotation_json)."""
    seg, area = segmentation(ann, image.height, image.width, rle=rle)
    entry = {
        "id": ann.id,
        "image_id": ann.image_id,
        "category_id": ann.class_id,
        "bbox": [ann.x, ann.y, ann.w, ann.h],
        "area": area,
        "iscrowd": 0,
        "segmentation": seg,
    }
    if ann.score is not None:
        entry["score"] = ann.score
    return entry


def write_json(source, out, progress) -> tuple[int, int]:
    """Write the COCO JSON to the text file `out`; returns (images, annotations)."""
    rle = source.options.rle
    dumps = json.dumps
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
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        out.write(dumps(header)[:-1] + ', "images": [')
        for images, by_image in source.chunks(raw_json=True):
            parts = []
            annotations = []
            for image in images:
                parts.append(dumps(_image_entry(image)))
                for ann in by_image.get(image.id, ()):
                    annotations.append(annotation_json(ann, image, rle))
            if image_count:
                out.write(",\n")
            out.write(",\n".join(parts))
            if annotations:
                if annotation_count:
                    spool.write(",\n")
                spool.write(",\n".join(annotations))
            image_count += len(images)
            annotation_count += len(annotations)
            progress(image_count, annotation_count)
        out.write('],\n"annotations": [')
        spool.seek(0)
        shutil.copyfileobj(spool, out, 1 << 20)
        out.write("]}\n")
    return image_count, annotation_count


def write(source, path: Path, progress) -> tuple[int, int]:
    """COCO JSON at `path`, or with zip_images a zip of annotations.json and images/<file_name>."""
    if not source.options.zip_images:
        with open(path, "w", encoding="utf-8") as out:
            return write_json(source, out, progress)
    with tempfile.TemporaryDirectory() as folder:
        json_path = Path(folder) / "annotations.json"
        with open(json_path, "w", encoding="utf-8") as out:
            counts = write_json(source, out, progress)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            zf.write(json_path, "annotations.json")
            for images, _ in source.chunks():
                for image in images:
                    copy_image(zf, image, f"images/{image.name}")
    return counts
