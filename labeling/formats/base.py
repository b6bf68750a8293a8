"""What export and import share: the export options, the error, what a writer reads (`Source`
and its rows), and the conventions of each layout (the exporter writes them; the importer
inverts them). The formats themselves are listed once, in registry.py.

Which images: ``images`` "done" (the default: images a reviewer submitted, so one without
exported annotations is a true negative), "done_prelabeled" (also the images the model labeled
that nobody reviewed: with states "accepted" only, they go out without annotations), "all"
(new and skipped ones too). ``include_empty`` then says whether the chosen images without an
exported annotation are written (as negatives) or left out. The options are declared once, in
``OPTION_SPECS`` (kind, label, help, choices); registry.Format names the ones a format reads.

Coordinates everywhere are those of inference/masks.py: pixel (row i, column j) covers
[j, j + 1] x [i, i + 1]; a box (x, y, w, h) is in pixels from the image's top-left corner.

File names inside archives: the image's ``original_name`` (its basename), made safe (only
letters, digits, ``.``, ``-``, ``_``; anything else becomes ``_``) and unique within the
export, stems included (on a clash — ``cat.jpg`` and ``Cat.png`` clash too, as their label
files would — ``-<image id>`` goes before the extension: ``cat.jpg`` → ``cat-42.jpg``).
``safe_image_names`` does this; the *stem* of that name (without extension) names the label
files.

COCO (``coco``)
    One JSON object {"info", "licenses", "images", "categories", "annotations"}. Image ids and
    category ids are the database ids; ``file_name`` is the archive name above. Annotations:
    ``bbox`` [x, y, w, h] as stored (floats), ``area`` the mask's pixel count (else w * h),
    ``iscrowd`` 0, ``score`` when the annotation has one. ``segmentation``, never ``[]``: for an
    annotation with a box only (no mask, no polygons), the box as one 4-point polygon
    [[x, y, x + w, y, x + w, y + h, x, y + h]] (``box_segmentation="polygon"``, the default:
    pycocotools' segm evaluation rasterises every annotation and fails with a KeyError on one
    without the key, and the polygon's pixels are the box's), or no "segmentation" key at all
    (``"none"``: for detection-only tools that take any segmentation for a mask). The COCO
    reader takes such a polygon, on the bbox's corners in that order, back as a box. Otherwise
    a list of polygons (one per part, outer rings only — COCO polygons have no holes) when the
    mask has no holes and the outer rings rasterise to it with IoU ≥ 0.99, otherwise — a mask
    with holes, or ``rle=True`` — the compressed RLE {"size": [h, w], "counts": str}. iscrowd stays 0 with RLE
    (pycocotools reads either form whatever iscrowd says; iscrowd=1 would make COCOeval ignore
    the object). With ``zip_images`` the output is a zip holding ``annotations.json`` and
    ``images/<file_name>``; otherwise the plain ``.json``.

YOLO detect / segment (``yolo_detect``, ``yolo_segment``; Ultralytics layout, always a zip)
    ``data.yaml``: a comment saying how val was made, then {"path": ".", "train":
    "images/train", "val": "images/val", "nc": N, "names": {0: name, 1: name, ...}} with class
    index = the position of the class in the project's class order (LabelClass.Meta.ordering:
    order, id) over *all* the project's classes (also when only some are exported), so indices
    are stable. ``images/{train,val}/<name>`` and ``labels/{train,val}/<stem>.txt``. Every
    exported image gets a label file (empty when it has no annotations: a negative).
    Val is never train unless asked: val_ratio (default 0.1 for YOLO) must give at least one
    val image and leave one training image, else the export fails saying so; with
    ``val_is_train`` (asked explicitly) every image is under train/ and "val" is
    "images/train", which the comment says.
    Detect lines: ``cls cx cy w h``, centre and size divided by the image width (x, w) and
    height (y, h), so in [0, 1]; written with ``%.10g`` (boxes reproduce within 1e-6 relative).
    Segment lines: ``cls x1 y1 x2 y2 ...``, the polygon's vertices divided by width / height,
    exactly ONE LINE PER ANNOTATION (Ultralytics reads a line as an instance). A mask with
    several parts is merged into one ring as Ultralytics' own converters do: consecutive parts
    joined by the shortest segment between their vertices, walked there and back (no area);
    or, with ``segment_parts="largest"``, its largest part alone. Holes are not representable
    and are left out (outer rings). An annotation with no polygons (a box only) is written as
    its box's 4 corners.
    The split: images are shuffled with ``random.Random(seed)`` over their ids in id order and
    the first ``round(n * val_ratio)`` go to val; the same seed gives the same split.

Pascal VOC (``voc``, always a zip)
    ``Annotations/<stem>.xml``: <annotation> with <folder>VOC</folder>, <filename>,
    <size><width><height><depth> (depth 3), <segmented> (1 when any exported object has a
    mask), and per annotation an <object> with <name> (class name), <pose>Unspecified</pose>,
    <truncated>0</truncated>, <difficult>0</difficult>, <bndbox> with 1-based inclusive
    integer pixel corners: xmin = floor(x) + 1, ymin = floor(y) + 1, xmax = ceil(x + w),
    ymax = ceil(y + h) (so a box of whole pixels round-trips exactly: x = xmin - 1,
    w = xmax - xmin + 1). ``ImageSets/Main/{train,val,trainval}.txt``: one stem per line
    (train = trainval when there is no split). ``JPEGImages/<name>``: the image files with
    their original extension. When any exported annotation has a mask:
    ``SegmentationObject/<stem>.png`` (palette PNG, pixel value = 1-based index of the
    object in the XML, 0 background) and ``SegmentationClass/<stem>.png`` (value = class
    index + 1 in project class order, 0 background), both in the VOC colour map
    (``voc_palette``); later objects paint over earlier ones.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from django.core.files.storage import default_storage

STATES = ("accepted", "proposed")


class FormatError(Exception):
    """Bad input or options: the message says what and where (file, line, field)."""


MAX_OPTION_INTEGER = 10**18 - 1  # class ids and the seed: a bigint holds them


IMAGES = ("done", "done_prelabeled", "all")  # the images choice: which image statuses go out
IMAGE_STATUSES = {"done": ("done",), "done_prelabeled": ("done", "prelabeled"), "all": None}
SEGMENT_PARTS = ("merge", "largest")  # YOLO segment: a multi-part mask as one line
BOX_SEGMENTATION = ("polygon", "none")  # COCO: a box without a mask


@dataclass(frozen=True)
class OptionSpec:
    """One export option, declared once: the form, the rows' descriptions, the API's checks and
    its schema read these. ``kind``: "bool", "choice" (``choices``: (value, label) pairs),
    "float" (``minimum`` ≤ v < ``maximum``), "int", "states" or "class_ids". ``common``: every
    writer honours it; the others are read only by the formats naming them (registry.Format)."""

    name: str
    kind: str
    label: str
    help: str = ""
    choices: tuple = ()
    common: bool = False
    minimum: float | None = None
    maximum: float | None = None


OPTION_SPECS: dict[str, OptionSpec] = {
    spec.name: spec
    for spec in (
        OptionSpec(
            "states",
            "states",
            "Annotations",
            choices=(
                ("accepted", "Accepted only"),
                ("accepted,proposed", "Accepted + proposals above the threshold"),
            ),
            common=True,
        ),
        OptionSpec(
            "images",
            "choice",
            "Images",
            "Done only: the images a reviewer submitted; one with nothing exported is a true negative. "
            "Done and pre-labeled: also the images the model labeled that nobody reviewed yet; with "
            '"Accepted only" their proposals are not written, so they go out without annotations. '
            "All: every image, new and skipped ones too. Images without annotations are written as "
            'negatives (an empty label file, no objects) unless "Images without annotations" says to leave '
            "them out.",
            choices=(
                ("done", "Done only"),
                ("done_prelabeled", "Done and pre-labeled"),
                ("all", "All images"),
            ),
            common=True,
        ),
        OptionSpec(
            "include_empty",
            "bool",
            "Write images without annotations (as negatives)",
            common=True,
        ),
        OptionSpec("class_ids", "class_ids", "Classes", common=True),
        OptionSpec("zip_images", "bool", "Zip with the images"),
        OptionSpec("rle", "bool", "Every mask as RLE"),
        OptionSpec(
            "box_segmentation",
            "choice",
            "A box without a mask",
            "As a polygon: its 4 corners as the segmentation (segm evaluation loads every "
            "annotation); no segmentation: the key is left out (detection only).",
            choices=(("polygon", "its box as a 4-point polygon"), ("none", "no segmentation key")),
        ),
        OptionSpec(
            "val_ratio",
            "float",
            "Val ratio",
            "The share of images held out for validation (seeded shuffle).",
            minimum=0.0,
            maximum=1.0,
        ),
        OptionSpec("seed", "int", "Seed", "The shuffle's seed: the same seed, the same split."),
        OptionSpec(
            "val_is_train",
            "bool",
            "Use the training images for validation",
            "No held-out images: val points at the training images (validation scores will be optimistic).",
        ),
        OptionSpec(
            "segment_parts",
            "choice",
            "A mask in several parts",
            "One line per instance either way.",
            choices=(("merge", "merged into one polygon"), ("largest", "its largest part only")),
        ),
    )
}


@dataclass(frozen=True)
class ExportOptions:
    states: tuple = ("accepted",)  # ("accepted",) or ("accepted", "proposed"): proposals ≥ threshold
    images: str = "done"  # IMAGES: which image statuses go out
    class_ids: tuple | None = None  # None: every class
    include_empty: bool = True  # images with no exported annotation (negatives)
    zip_images: bool = False  # COCO only: a zip with the images (YOLO / VOC always have them)
    rle: bool = False  # COCO only: every mask as RLE
    box_segmentation: str = "polygon"  # COCO only: BOX_SEGMENTATION
    val_ratio: float = 0.0  # YOLO / VOC: fraction of images in the val split (YOLO's form default 0.1)
    seed: int = 0
    val_is_train: bool = False  # YOLO: no split, val = the training images (asked explicitly)
    segment_parts: str = "merge"  # YOLO segment: SEGMENT_PARTS

    def to_json(self) -> dict:
        return {
            "states": list(self.states),
            "images": self.images,
            "class_ids": None if self.class_ids is None else list(self.class_ids),
            "include_empty": self.include_empty,
            "zip_images": self.zip_images,
            "rle": self.rle,
            "box_segmentation": self.box_segmentation,
            "val_ratio": self.val_ratio,
            "seed": self.seed,
            "val_is_train": self.val_is_train,
            "segment_parts": self.segment_parts,
        }

    @classmethod
    def from_json(cls, data: dict | None) -> ExportOptions:
        """Validated options from a dict (as stored on Export.options); FormatError on bad ones."""
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise FormatError(f"Unknown export option(s): {', '.join(sorted(unknown))}.")
        states = data.get("states", ["accepted"])
        if isinstance(states, str):
            states = [s for s in states.split(",") if s.strip()]
        if not isinstance(states, list | tuple) or not states:
            raise FormatError("Option states: give a list of states.")
        states = tuple(str(s).strip() for s in states)
        if set(states) - set(STATES) or "accepted" not in states:
            raise FormatError('Option states must be "accepted" or "accepted,proposed".')
        class_ids = data.get("class_ids")
        if class_ids is not None:
            if not isinstance(class_ids, list | tuple):
                raise FormatError("Option class_ids: give a list of class ids.")
            try:
                class_ids = tuple(int(c) for c in class_ids)
            except (TypeError, ValueError, OverflowError) as exc:
                raise FormatError(f"Option class_ids: not a list of integers ({class_ids!r:.80}).") from exc
            if not all(0 < c <= MAX_OPTION_INTEGER for c in class_ids):
                raise FormatError("Option class_ids: not a list of class ids.")
        flags = {}
        for name in ("include_empty", "zip_images", "rle", "val_is_train"):
            value = data.get(name, getattr(cls, name))
            if not isinstance(value, bool):
                raise FormatError(f"Option {name} must be true or false (got {value!r:.40}).")
            flags[name] = value
        for name in ("images", "box_segmentation", "segment_parts"):
            value = data.get(name, getattr(cls, name))
            allowed = [v for v, _ in OPTION_SPECS[name].choices]
            if value not in allowed:
                raise FormatError(f"Option {name} must be one of {', '.join(allowed)} (got {value!r:.40}).")
            flags[name] = value
        try:
            val_ratio = float(data.get("val_ratio", 0.0))
            seed = int(data.get("seed", 0))
        except (TypeError, ValueError, OverflowError) as exc:
            raise FormatError("Options val_ratio and seed must be numbers.") from exc
        if not 0.0 <= val_ratio < 1.0:  # NaN and infinities too
            raise FormatError(f"Option val_ratio must be in [0, 1) (got {val_ratio:.6g}).")
        if not -MAX_OPTION_INTEGER <= seed <= MAX_OPTION_INTEGER:
            raise FormatError(f"Option seed must be an integer of at most 18 digits (got {str(seed)[:24]}).")
        return cls(states=states, class_ids=class_ids, val_ratio=val_ratio, seed=seed, **flags)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file's basename with only letters, digits, ".", "-" and "_" (never empty, never hidden)."""
    base = os.path.basename(str(name).replace("\\", "/")) or "image"
    base = _UNSAFE.sub("_", base).lstrip(".") or "image"
    return base[:150]


def safe_image_names(images: Iterable[tuple[int, str]], taken: set[str] | None = None) -> dict[int, str]:
    """Archive names for (image id, original_name) pairs: safe, with unique stems (ignoring case).

    ``taken`` (lower-cased stems already used; updated in place) lets a streaming exporter call
    this chunk by chunk and still get unique names across the whole export.
    """
    taken = set() if taken is None else taken
    names = {}
    for image_id, original in images:
        name = safe_name(original)
        base, ext = os.path.splitext(name)
        if base.lower() in taken:
            name = f"{base}-{image_id}{ext}"
            suffix = 1
            while os.path.splitext(name)[0].lower() in taken:
                name = f"{base}-{image_id}-{suffix}{ext}"
                suffix += 1
        taken.add(os.path.splitext(name)[0].lower())
        names[image_id] = name
    return names


def stem(name: str) -> str:
    return os.path.splitext(name)[0]


def voc_palette() -> list[int]:
    """The Pascal VOC colour map: 256 RGB triples, flat (for PIL's putpalette)."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.extend((r, g, b))
    return palette


class ImageRow(NamedTuple):
    """One exported image, as the exporters get it (``name``: its unique, safe archive name)."""

    id: int
    name: str
    width: int
    height: int
    file: str  # storage name ("" when there is no file)


class AnnotationRow(NamedTuple):
    """One exported annotation: plain values, no model instance."""

    id: int
    image_id: int
    class_id: int
    x: float
    y: float
    w: float
    h: float
    mask: dict | None  # COCO RLE {"size": [h, w], "counts": str}
    polygons: list | None  # parts → rings (outer, holes) → [x0, y0, ...]
    score: float | None


class ClassRow(NamedTuple):
    id: int
    name: str
    index: int  # 0-based position in the project's class order (YOLO class index, VOC index - 1)


Progress = Callable[[int, int], None]  # a writer reports (images so far, annotations so far)


class Source(Protocol):
    """What a writer reads: the project's rows under some options, chunk by chunk (implemented
    by labeling.selectors.exports.ExportSource)."""

    project: Any  # its .name titles a COCO file
    options: ExportOptions
    classes: list[ClassRow]  # the exported classes
    all_classes: list[ClassRow]  # every class of the project, in order (indices stay stable)

    def chunks(
        self, *, raw_json: bool = False
    ) -> Iterator[tuple[list[ImageRow], dict[int, list[AnnotationRow]]]]:
        """(images, their annotations by image id), chunk by chunk, images in id order. With
        `raw_json`, AnnotationRow.mask and .polygons are the stored JSON text (None for NULL)."""
        ...

    def val_ids(self) -> frozenset[int]:
        """The images of the val split (options.val_ratio, options.seed: `val_split`)."""
        ...

    def image_ids(self) -> list[int]:
        """Every exported image id, in id order."""
        ...


def val_split(ids: list[int], ratio: float, seed: int) -> frozenset[int]:
    """The val images among `ids` (in id order): shuffled with random.Random(seed), the first
    round(n × ratio). The same ids, ratio and seed give the same split."""
    if ratio <= 0:
        return frozenset()
    shuffled = list(ids)
    random.Random(seed).shuffle(shuffled)
    return frozenset(shuffled[: round(len(shuffled) * ratio)])


def copy_image(zf: zipfile.ZipFile, image: ImageRow, arcname: str) -> None:
    """Add an image's stored file to a zip (stored, not deflated: images are compressed)."""
    if not image.file:
        raise FormatError(f"Image {image.id} ({image.name}) has no file to put in the archive.")
    try:
        handle = default_storage.open(image.file, "rb")
    except FileNotFoundError as exc:
        raise FormatError(f"Image {image.id} ({image.name}): its file {image.file} is missing.") from exc
    with handle, zf.open(zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0)), "w") as target:
        shutil.copyfileobj(handle, target, 1 << 20)
