"""Read a Pascal VOC zip (see base.py) into a ParsedDataset.

Annotations/<stem>.xml (parsed with defusedxml: entity declarations — billion laughs — and
external entities are refused) gives each image's objects; <bndbox> holds 1-based inclusive
pixel corners, so x = xmin - 1, y = ymin - 1, w = xmax - xmin + 1, h = ymax - ymin + 1 (the
exporter's convention inverted exactly). The image is JPEGImages/<filename> when the archive
has it, else the project's image of that name. SegmentationObject/<stem>.png, when present,
gives each object's mask: the pixels whose value is the object's 1-based index in the XML
(0 is background, 255 VOC's "void" border).
"""

from __future__ import annotations

import io
import math
import os
import xml.etree.ElementTree as ET
from typing import BinaryIO

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np
from django.conf import settings
from PIL import Image as PILImage

from .base import FormatError
from .parsed import ParsedAnnotation, ParsedDataset, ParsedImage, basename, is_zip, open_archive, read_entry


def _folder_of(name: str) -> str:
    parts = name.split("/")
    return parts[-2] if len(parts) > 1 else ""


def parse_xml(data: bytes, where: str):
    """The XML's root element; FormatError for entities, external references and bad XML."""
    try:
        return SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.EntitiesForbidden as exc:
        if exc.sysid or exc.pubid:
            raise FormatError(
                f"{where}: refused: the XML declares an external entity ({exc.name!r} → "
                f"{exc.sysid or exc.pubid!r}); external entities are not allowed."
            ) from exc
        raise FormatError(
            f"{where}: refused: the XML declares entities ({exc.name!r}); entity expansion "
            "(billion laughs) is not allowed."
        ) from exc
    except defusedxml.ExternalReferenceForbidden as exc:
        raise FormatError(
            f"{where}: refused: the XML refers to an external entity ({exc.sysid or exc.pubid!r}); "
            "external entities are not allowed."
        ) from exc
    except defusedxml.DefusedXmlException as exc:
        raise FormatError(f"{where}: refused: unsafe XML ({exc}).") from exc
    except ET.ParseError as exc:
        line, column = exc.position
        raise FormatError(f"{where}: malformed XML at line {line}, column {column}.") from exc


def _text(element, path: str) -> str | None:
    found = element.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


MAX_NUMBER_CHARS = 32  # a number written longer is not taken as one


def _number(element, path: str) -> float | None:
    text = _text(element, path)
    if text is not None and len(text) > MAX_NUMBER_CHARS:
        return None
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _object_masks(data: bytes, where: str, dataset: ParsedDataset) -> np.ndarray | None:
    """The SegmentationObject PNG as an array of object indices."""
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            width, height = im.size
            if width * height > settings.LABELGPT_MAX_IMAGE_PIXELS:
                dataset.error(where, f"the mask image declares {width} × {height} pixels: over the limit.")
                return None
            if im.mode not in ("P", "L"):
                dataset.error(where, f"an object mask must be a palette or grey PNG (got mode {im.mode}).")
                return None
            im.load()
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError, EOFError, PILImage.DecompressionBombError) as exc:
        dataset.error(where, f"not a readable PNG ({exc}).")
        return None


def read(fileobj: BinaryIO, name: str) -> ParsedDataset:
    """The Pascal VOC reader (the registry's entry for "voc")."""
    if not is_zip(fileobj):
        raise FormatError(f"{name}: a Pascal VOC dataset is a .zip archive (Annotations/, JPEGImages/).")
    archive = open_archive(fileobj)
    xmls = sorted(n for n in archive.names if n.lower().endswith(".xml") and _folder_of(n) == "Annotations")
    if not xmls:
        raise FormatError(f"{name}: no Annotations/*.xml in the archive.")
    jpeg_images = {basename(n): n for n in archive.images if _folder_of(n) == "JPEGImages"}
    jpeg_lower: dict[str, list[str]] = {}
    for base, entry in jpeg_images.items():
        jpeg_lower.setdefault(base.lower(), []).append(entry)
    object_pngs = {
        os.path.splitext(basename(n))[0]: n for n in archive.images if _folder_of(n) == "SegmentationObject"
    }
    dataset = ParsedDataset(archive=archive)
    brought = set()
    for xml_name in xmls:
        try:
            root = parse_xml(read_entry(archive, xml_name), xml_name)
        except FormatError as exc:
            dataset.error(xml_name, str(exc).removeprefix(f"{xml_name}: "))
            continue
        if root.tag != "annotation":
            dataset.error(xml_name, f"the root element must be <annotation>, not <{root.tag}>.")
            continue
        xml_stem = os.path.splitext(basename(xml_name))[0]
        filename = _text(root, "filename")
        width, height = _number(root, "size/width"), _number(root, "size/height")
        if root.find("size") is not None and (not width or not height or width < 1 or height < 1):
            dataset.error(f"{xml_name} <size>", "width and height must be positive integers.")
            continue
        entry = None
        if filename:
            entry = jpeg_images.get(basename(filename))
            if entry is None and len(jpeg_lower.get(basename(filename).lower(), [])) == 1:
                entry = jpeg_lower[basename(filename).lower()][0]
        if entry is None:
            stems = [e for b, e in jpeg_images.items() if os.path.splitext(b)[0] == xml_stem]
            entry = stems[0] if len(stems) == 1 else None
        if entry is not None:
            brought.add(entry)
            image = ParsedImage(key=xml_name, name=basename(entry), location=xml_name, member=entry)
        else:
            image = ParsedImage(
                key=xml_name, name=basename(filename or xml_stem), location=xml_name, by_stem=not filename
            )
        if width and height:
            image.width, image.height = int(width), int(height)
        dataset.images.append(image)

        indices = None
        if xml_stem in object_pngs:
            png = object_pngs[xml_stem]
            data = read_entry(archive, png, max_bytes=settings.LABELGPT_MAX_IMAGE_BYTES)
            indices = _object_masks(data, png, dataset)
        for number, obj in enumerate(root.iter("object"), start=1):
            location = f"{xml_name} object {number}"
            class_name = _text(obj, "name")
            if not class_name:
                dataset.error(location, "<name> (the class) is missing.")
                continue
            location = f"{location} ({class_name})"
            corners = [_number(obj, f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax")]
            if any(v is None for v in corners):
                dataset.error(f"{location} <bndbox>", "needs xmin, ymin, xmax and ymax as numbers.")
                continue
            xmin, ymin, xmax, ymax = corners
            if xmax < xmin or ymax < ymin:
                dataset.error(f"{location} <bndbox>", f"xmax/ymax ({xmax:g}, {ymax:g}) are below xmin/ymin.")
                continue
            mask = None
            if indices is not None:
                mask = indices == number
                if not mask.any():
                    mask = None
            dataset.annotations.append(
                ParsedAnnotation(
                    image_key=xml_name,
                    class_name=class_name,
                    location=location,
                    box=(xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1),
                    mask=mask,
                )
            )
    # Images in JPEGImages/ that no XML names come in too (images without objects).
    for entry in sorted(set(jpeg_images.values()) - brought):
        dataset.images.append(ParsedImage(key=entry, name=basename(entry), location=entry, member=entry))
    return dataset
