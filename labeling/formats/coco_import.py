"""Read COCO JSON (a .json, or a .zip holding it and the images) into a ParsedDataset.

Segmentations: polygons (a list of flat [x0, y0, ...] rings: COCO has no holes, so each ring
is a part of its own), compressed RLE ({"size": [h, w], "counts": str}) or uncompressed RLE
(counts a list of ints). Every wrong type is reported with its JSON path
("annotations[12].bbox"); malformed JSON with its line and column. The JSON is parsed with
labeling.safejson's limits (as the API's bodies): a number past them (an integer of more than 20
digits, one past a float's range) or nesting too deep refuses the file, with the JSON path.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from typing import Any, BinaryIO

from .. import safejson
from .base import FormatError
from .parsed import (
    ParsedAnnotation,
    ParsedDataset,
    ParsedImage,
    basename,
    is_number,
    is_zip,
    open_archive,
    read_capped,
    read_entry,
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_box_polygon(geometry: dict, box: list, tolerance: float = 1e-6) -> bool:
    """Is the segmentation one 4-point polygon on the box's corners, clockwise from the top-left
    (how labeling.formats.coco writes a box drawn without a mask)?"""
    polygons = geometry.get("polygons") if geometry else None
    if not polygons or len(polygons) != 1 or len(polygons[0]) != 1 or len(polygons[0][0]) != 8:
        return False
    x, y, w, h = (float(v) for v in box)
    corners = (x, y, x + w, y, x + w, y + h, x, y + h)
    return all(
        abs(float(a) - b) <= tolerance * max(1.0, abs(b))
        for a, b in zip(polygons[0][0], corners, strict=True)
    )


def _segmentation(value: Any, path: str, dataset: ParsedDataset) -> dict | None:
    """{"polygons": ...} or {"rle": ...}; None (with an error) when the type is wrong."""
    if isinstance(value, list):
        if not value:
            return {}
        parts = []
        for index, ring in enumerate(value):
            if not isinstance(ring, list) or not all(is_number(v) for v in ring):
                dataset.error(
                    f"{path}[{index}]", "a polygon must be a list of numbers [x0, y0, x1, y1, ...]."
                )
                return None
            if len(ring) < 6 or len(ring) % 2:
                dataset.error(
                    f"{path}[{index}]",
                    f"a polygon needs an even count of at least 6 numbers (got {len(ring)}).",
                )
                return None
            parts.append([ring])
        return {"polygons": parts}
    if isinstance(value, dict):
        size, counts = value.get("size"), value.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
            dataset.error(f"{path}.size", "an RLE needs size [height, width]: two positive integers.")
            return None
        if not (isinstance(counts, str) or (isinstance(counts, list) and all(_is_int(c) for c in counts))):
            dataset.error(f"{path}.counts", "RLE counts must be a string (compressed) or a list of integers.")
            return None
        return {"rle": {"size": size, "counts": counts}}
    dataset.error(
        path, f"segmentation must be a list of polygons or an RLE object, not {type(value).__name__}."
    )
    return None


def parse_coco_json(data: bytes, where: str, dataset: ParsedDataset, archive_images: list[str]) -> None:
    """`archive_images`: the image entries of the archive the JSON came in (their names only:
    the ones the JSON names become ParsedImage.member, the others are never read)."""
    try:
        document = safejson.loads(data)
    except safejson.JSONError as exc:
        if exc.lineno is not None:
            raise FormatError(
                f"{where}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.reason}."
            ) from exc
        raise FormatError(f"{where}: {exc}.") from exc
    if not isinstance(document, dict):
        raise FormatError(
            f"{where}: the top level must be a JSON object with images, categories, annotations."
        )
    for key in ("images", "categories", "annotations"):
        if not isinstance(document.get(key), list):
            raise FormatError(f"{where}: {key} must be a list (got {type(document.get(key)).__name__}).")

    exact_archive: dict[str, list[str]] = {}
    lower_archive: dict[str, list[str]] = {}
    for name in archive_images:
        exact_archive.setdefault(basename(name), []).append(name)
        lower_archive.setdefault(basename(name).lower(), []).append(name)
    image_ids: set = set()
    for path, image in _objects(dataset, document, "images", "an image"):
        named = _id_and_name(dataset, path, image, "file_name", seen=image_ids, what="image")
        if named is None:
            continue
        image_id, file_name = named
        width, height = image.get("width"), image.get("height")
        if (width is not None or height is not None) and not (
            _is_int(width) and _is_int(height) and width > 0 and height > 0
        ):
            dataset.error(path, "width and height must be positive integers.")
            continue
        image_ids.add(image_id)
        base = basename(file_name)
        found = exact_archive.get(base) or lower_archive.get(base.lower(), [])
        dataset.images.append(
            ParsedImage(
                key=image_id,
                name=base,
                location=f"{path} ({file_name})",
                member=found[0] if len(found) == 1 else None,
                width=width,
                height=height,
            )
        )

    categories: dict[int, str] = {}
    for path, category in _objects(dataset, document, "categories", "a category"):
        named = _id_and_name(dataset, path, category, "name", seen=categories, what="category")
        if named is not None:
            categories[named[0]] = named[1].strip()

    for path, annotation in _objects(dataset, document, "annotations", "an annotation"):
        image_id = _known_id(dataset, path, annotation, "image_id", image_ids, what="image", among="images")
        if image_id is None:
            continue
        category_id = _known_id(
            dataset, path, annotation, "category_id", categories, what="category", among="categories"
        )
        if category_id is None:
            continue
        box = annotation.get("bbox")
        if box is not None and not (
            isinstance(box, list) and len(box) == 4 and all(is_number(v) for v in box)
        ):
            dataset.error(f"{path}.bbox", f"must be [x, y, width, height]: four numbers (got {box!r:.60}).")
            continue
        geometry: dict | None = {}
        if annotation.get("segmentation") is not None:
            geometry = _segmentation(annotation["segmentation"], f"{path}.segmentation", dataset)
            if geometry is None:
                continue
        if box is not None and is_box_polygon(geometry, box):
            geometry = {}  # a box written as its 4-point polygon (our COCO writer's default): a box
        if box is None and not geometry:
            dataset.error(path, "has neither a bbox nor a segmentation.")
            continue
        score = annotation.get("score")
        dataset.annotations.append(
            ParsedAnnotation(
                image_key=image_id,
                class_name=categories[category_id],
                location=path,
                box=tuple(box) if box is not None else None,
                score=float(score) if is_number(score) else None,
                **geometry,
            )
        )


def read(fileobj: BinaryIO, name: str) -> ParsedDataset:
    """The COCO reader (the registry's entry for "coco")."""
    dataset = ParsedDataset()
    if is_zip(fileobj):
        dataset.archive = archive = open_archive(fileobj)
        documents = sorted(n for n in archive.names if n.lower().endswith(".json"))
        if not documents:
            raise FormatError(f"{name}: the archive holds no .json file.")
        if len(documents) > 1:
            preferred = [
                n for n in documents if basename(n).lower() in ("annotations.json", "instances.json")
            ]
            if len(preferred) != 1:
                raise FormatError(
                    f"{name}: the archive holds several JSON files ({', '.join(documents[:5])})."
                )
            documents = preferred
        parse_coco_json(read_entry(archive, documents[0]), documents[0], dataset, archive.images)
    else:
        parse_coco_json(read_capped(fileobj, what=name), name, dataset, [])
    return dataset


def _objects(dataset: ParsedDataset, document: dict, key: str, what: str) -> Iterator[tuple[str, dict]]:
    """(path, entry) for each entry of document[key] that is an object; an error for the others."""
    for index, entry in enumerate(document[key]):
        path = f"{key}[{index}]"
        if isinstance(entry, dict):
            yield path, entry
        else:
            dataset.error(path, f"{what} must be an object.")


def _id_and_name(
    dataset: ParsedDataset, path: str, entry: dict, name_key: str, *, seen: Container, what: str
) -> tuple[int, str] | None:
    """The entry's integer id (not in `seen`) and non-empty name; None with the error recorded."""
    entry_id, name = entry.get("id"), entry.get(name_key)
    if not _is_int(entry_id):
        dataset.error(f"{path}.id", f"must be an integer (got {entry_id!r:.40}).")
    elif not isinstance(name, str) or not name.strip():
        dataset.error(f"{path}.{name_key}", f"must be a non-empty string (got {name!r:.40}).")
    elif entry_id in seen:
        dataset.error(f"{path}.id", f"{what} id {entry_id} appears twice.")
    else:
        return entry_id, name
    return None


def _known_id(
    dataset: ParsedDataset, path: str, entry: dict, key: str, known: Container, *, what: str, among: str
) -> int | None:
    """entry[key] when it is an integer id of `known`; None with the error recorded."""
    value = entry.get(key)
    if not _is_int(value):
        dataset.error(f"{path}.{key}", f"must be an integer (got {value!r:.40}).")
    elif value not in known:
        dataset.error(f"{path}.{key}", f"unknown {what} id {value} (not in {among}).")
    else:
        return value
    return None
