"""Annotation import (issues 5 and 11): COCO JSON, YOLO detect / segment and Pascal VOC into a
project, as a background task.

`import_start` stores the uploaded file (MEDIA_ROOT/imports/<project>/) with an ImportJob row
and sends `import_run` (queue "default") on commit; the task (`import_run`) runs
`annotations_import` on it, keeps its progress and its report on the row, and deletes the file.
The import_annotations command runs `annotations_import` directly.

The format's reader (labeling.formats.registry: import_format(name).read) turns a file into a
`formats.parsed.ParsedDataset`: the images it names (with their archive entry when the archive
brings them along: read lazily, one at a time, by labeling.ingest.ZipArchive with its caps) and
its annotations, each with a location ("annotations[12]", "labels/train/cat.txt line 3",
"Annotations/cat.xml object 2") for the messages. Readers know nothing of the database and never
import this module. `annotations_import` then

1. matches classes by name (case-insensitive); unknown ones are created or reported,
2. matches the file's images to the project's (an entry brought along: read, validated like an
   upload by `prepare_image`, a duplicate of an existing image (same sha256) is that image, a
   new one has its files stored at once so that one image at a time is in memory; otherwise
   by file name: `original_name`'s basename, case-sensitive first, then case-insensitive, then
   as the exporters write it (`safe_name`); two candidates are an ambiguity, an error),
3. checks every geometry against its image (box inside, RLE size, polygons inside),
4. and only when nothing is wrong writes the rows in one transaction (new images, new classes,
   one bulk_create of the annotations: source "import", state "accepted"). Any error: no row is
   written and the files stored in step 2 are deleted.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from inference.masks import (
    mask_box,
    mask_to_polygons,
    mask_to_rle,
    polygons_to_mask,
    rle_runs_checked,
    rle_to_mask,
)

from .. import queues
from ..formats.base import FormatError, safe_name
from ..formats.parsed import ParsedAnnotation, ParsedDataset, basename
from ..formats.registry import import_format
from ..ingest import ArchiveRefused, IngestError, Limits, prepare_image
from ..models import (
    BOX_TOLERANCE,
    MAX_POLYGON_VALUES,
    PALETTE,
    Annotation,
    Image,
    ImportJob,
    JobStatus,
    LabelClass,
    Project,
    box_errors,
)
from .images import image_files_save

logger = logging.getLogger(__name__)

MAX_ERRORS = 200  # past this many, the report says how many more there were
PROGRESS_EVERY_S = 0.5  # how often a running import writes its counters


# The report ------------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    format: str = ""
    file_name: str = ""
    created_annotations: int = 0
    matched_images: list[tuple[str, int]] = field(default_factory=list)  # (name in the file, image id)
    created_images: list[tuple[str, int]] = field(default_factory=list)  # brought along, new
    created_classes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name in the file, why)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (where, what)
    more_errors: int = 0  # errors past MAX_ERRORS, not listed

    @property
    def ok(self) -> bool:
        return not self.errors

    def add_errors(self, errors: list[tuple[str, str]]) -> None:
        for error in errors:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(error)
            else:
                self.more_errors += 1

    def as_dict(self) -> dict:
        return {
            "format": self.format,
            "file": self.file_name,
            "ok": self.ok,
            "created_annotations": self.created_annotations,
            "matched_images": [{"name": n, "id": i} for n, i in self.matched_images],
            "created_images": [{"name": n, "id": i} for n, i in self.created_images],
            "created_classes": list(self.created_classes),
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
            "errors": [{"where": w, "message": m} for w, m in self.errors],
            "more_errors": self.more_errors,
        }


# Matching images -------------------------------------------------------------------------------------


class _ProjectImages:
    """The project's images by basename / stem: exact, lower-cased, and as `safe_name` writes them."""

    def __init__(self, project: Project) -> None:
        self.by_id: dict[int, tuple[str, int, int]] = {}
        self.by_sha: dict[str, int] = {}
        self.index: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        rows = Image.objects.filter(project=project).values_list(
            "id", "original_name", "width", "height", "sha256"
        )
        for image_id, original, width, height, sha in rows.iterator(chunk_size=5000):
            self.by_id[image_id] = (original, width, height)
            self.by_sha[sha] = image_id
            base = basename(original)
            safe = safe_name(base)
            for kind, value in (("name", base), ("safe", safe)):
                stem = os.path.splitext(value)[0]
                self.index[kind][value].append(image_id)
                self.index[kind + "-lower"][value.lower()].append(image_id)
                self.index[kind + "-stem"][stem].append(image_id)
                self.index[kind + "-stem-lower"][stem.lower()].append(image_id)

    def find(self, name: str, *, by_stem: bool) -> list[int]:
        """The candidates for a name: the first rule that finds any wins (several: ambiguous)."""
        base = basename(name)
        if by_stem:
            base = os.path.splitext(base)[0]
            rules = (
                ("name-stem", base),
                ("name-stem-lower", base.lower()),
                ("safe-stem-lower", base.lower()),
            )
        else:
            rules = (("name", base), ("name-lower", base.lower()), ("safe-lower", safe_name(base).lower()))
        for kind, key in rules:
            found = self.index[kind].get(key)
            if found:
                return sorted(set(found))
        return []


@dataclass
class _Target:
    """Where a file's image lands: an existing image, or a new one (`image`: its files are in
    storage, its row is saved in the import's transaction)."""

    name: str
    width: int
    height: int
    image_id: int | None = None
    image: Image | None = None

    @property
    def pk(self) -> int:
        return self.image.pk if self.image is not None else self.image_id


def _resolve_images(
    project: Project,
    dataset: ParsedDataset,
    report: ImportReport,
    errors: list,
    *,
    user,
    stored: list[Image],
    progress: Callable[[int, int], None],
) -> dict[Any, _Target]:
    """Each of the file's images → its target. An image the archive brings along is read now
    (one entry at a time, with the archive's caps: an ArchiveRefused refuses the import) and,
    while nothing is wrong yet, its files are stored at once (`stored`), so that only one
    image's bytes are in memory at a time."""
    known = _ProjectImages(project)
    limits = Limits.from_settings()
    targets: dict[Any, _Target] = {}
    new_by_sha: dict[str, _Target] = {}
    by_member: dict[str, _Target | None] = {}  # archive entry → its target (None: refused)
    total = len(dataset.images)
    for done, parsed in enumerate(dataset.images, start=1):
        progress(done - 1, total)
        shown = (
            f"{parsed.location} ({parsed.name})" if parsed.name not in parsed.location else parsed.location
        )
        if parsed.member in by_member:  # named twice (two label files, two XMLs): read once
            target = by_member[parsed.member]
            if target is None:
                continue  # refused, reported the first time
            if target.image_id is not None:
                report.matched_images.append((parsed.name, target.image_id))
        elif parsed.member is not None and dataset.archive is not None:
            by_member[parsed.member] = None
            try:
                data = dataset.archive.read(parsed.member, max_bytes=limits.max_image_bytes)
            except ArchiveRefused as exc:
                raise FormatError(str(exc)) from exc
            try:
                prepared = prepare_image(data, limits=limits, thumbnail_size=settings.LABELGPT_THUMBNAIL_SIZE)
            except IngestError as exc:
                errors.append((shown, str(exc)))
                continue
            finally:
                del data
            if prepared.sha256 in known.by_sha:
                image_id = known.by_sha[prepared.sha256]
                _, width, height = known.by_id[image_id]
                target = _Target(name=parsed.name, width=width, height=height, image_id=image_id)
                report.matched_images.append((parsed.name, image_id))
            elif prepared.sha256 in new_by_sha:
                target = new_by_sha[prepared.sha256]
            else:
                target = _Target(name=parsed.name, width=prepared.width, height=prepared.height)
                if not errors:  # refused anyway: nothing to store
                    target.image = image_files_save(
                        project=project, name=parsed.name, prepared=prepared, user=user
                    )
                    stored.append(target.image)
                new_by_sha[prepared.sha256] = target
            del prepared
            by_member[parsed.member] = target
        else:
            found = known.find(parsed.name, by_stem=parsed.by_stem)
            if not found:
                report.skipped.append((parsed.name, "No image of that name in the project."))
                continue
            if len(found) > 1:
                names = ", ".join(f"{known.by_id[i][0]} (id {i})" for i in found[:5])
                errors.append(
                    (
                        shown,
                        f'"{parsed.name}" matches {len(found)} images of the project: {names}. '
                        "Rename them, or bring the images along in the archive.",
                    )
                )
                continue
            image_id = found[0]
            _, width, height = known.by_id[image_id]
            target = _Target(name=parsed.name, width=width, height=height, image_id=image_id)
            report.matched_images.append((parsed.name, image_id))
        if (
            parsed.width is not None
            and parsed.height is not None
            and ((parsed.width, parsed.height) != (target.width, target.height))
        ):
            errors.append(
                (
                    shown,
                    f"The file says the image is {parsed.width} × {parsed.height} pixels but it is "
                    f"{target.width} × {target.height}; its annotations would be misplaced.",
                )
            )
            continue
        targets[parsed.key] = target
    progress(total, total)
    return targets


# Geometry ----------------------------------------------------------------------------------------------


class _Bad(Exception):
    pass


def _clean_rle(rle: dict, target: _Target) -> np.ndarray:
    size = rle.get("size")
    if size != [target.height, target.width]:
        raise _Bad(
            f"the RLE size {size!r:.40} is not the image's "
            f"[height, width] = [{target.height}, {target.width}]"
        )
    try:
        rle_runs_checked(rle.get("counts"), height=target.height, width=target.width)
        return rle_to_mask({"size": size, "counts": rle["counts"]})
    except ValueError as exc:
        raise _Bad(f"not a valid COCO RLE: {exc}") from exc


def _clean_polygons(polygons: list, target: _Target, normalized: bool) -> list:
    width, height = target.width, target.height
    out = []
    total = 0
    for part in polygons:
        rings = []
        for ring in part:
            values = [float(v) for v in ring]
            total += len(values)
            if total > MAX_POLYGON_VALUES:
                raise _Bad(f"the polygons have more than {MAX_POLYGON_VALUES} coordinates")
            xs, ys = values[0::2], values[1::2]
            if normalized:
                xs, ys = [x * width for x in xs], [y * height for y in ys]
            tolerance = BOX_TOLERANCE * (max(width, height) if normalized else 1)
            if (
                min(xs) < -tolerance
                or min(ys) < -tolerance
                or max(xs) > width + tolerance
                or max(ys) > height + tolerance
            ):
                raise _Bad(
                    f"a polygon goes outside the {width} × {height} image "
                    f"(x from {min(xs):g} to {max(xs):g}, y from {min(ys):g} to {max(ys):g})"
                )
            xs = [min(max(x, 0.0), width) for x in xs]
            ys = [min(max(y, 0.0), height) for y in ys]
            rings.append([v for pair in zip(xs, ys, strict=True) for v in pair])
        out.append(rings)
    return out


def _clean_box(box: tuple, target: _Target, normalized: bool) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in box)
    tolerance = BOX_TOLERANCE
    if normalized:
        x, y, w, h = x * target.width, y * target.height, w * target.width, h * target.height
        tolerance = BOX_TOLERANCE * max(target.width, target.height)  # rounding of normalised values
    # Rounding noise at the image's edges (a normalised 0 or 1) is not an error.
    if -tolerance <= x < 0:
        w, x = w + x, 0.0
    if -tolerance <= y < 0:
        h, y = h + y, 0.0
    if target.width < x + w <= target.width + tolerance:
        w = target.width - x
    if target.height < y + h <= target.height + tolerance:
        h = target.height - y
    problems = box_errors((x, y, w, h), width=target.width, height=target.height)
    if problems:
        raise _Bad(" ".join(problems))
    return x, y, w, h


def _geometry(parsed: ParsedAnnotation, target: _Target) -> dict:
    mask = None
    polygons = None
    if parsed.rle is not None:
        mask = _clean_rle(parsed.rle, target)
        polygons = mask_to_polygons(mask)
    elif parsed.mask is not None:
        if parsed.mask.shape != (target.height, target.width):
            raise _Bad(
                f"the mask is {parsed.mask.shape[1]} × {parsed.mask.shape[0]} pixels, "
                f"the image {target.width} × {target.height}"
            )
        mask = parsed.mask.astype(bool)
        polygons = mask_to_polygons(mask)
    elif parsed.polygons is not None:
        polygons = _clean_polygons(parsed.polygons, target, parsed.normalized)
        mask = polygons_to_mask(polygons, target.height, target.width)
    if mask is not None and not mask.any():
        mask = None  # a speck too small to cover a pixel centre: the box stays
    if parsed.box is not None:
        box = _clean_box(parsed.box, target, parsed.normalized)
    elif parsed.polygons is not None and polygons:
        # The polygons' extent, as COCO (toBbox) and Ultralytics (segments2boxes) take it.
        xs = [v for part in polygons for ring in part for v in ring[0::2]]
        ys = [v for part in polygons for ring in part for v in ring[1::2]]
        box = _clean_box((min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)), target, False)
    elif mask is not None:
        box = mask_box(mask)
    else:
        raise _Bad("no box and no segmentation")
    return {
        "x": box[0],
        "y": box[1],
        "w": box[2],
        "h": box[3],
        "mask": mask_to_rle(mask) if mask is not None else None,
        "polygons": polygons or None,
    }


# The service ----------------------------------------------------------------------------------------


def annotations_import(
    *,
    project: Project,
    fileobj: BinaryIO,
    name: str,
    format: str,
    user=None,
    create_classes: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import a dataset file into the project: all of it, or nothing when anything is wrong.

    Runs where it is called (the import task, the import_annotations command); `progress(done,
    total)` is told how many of the file's images have been matched or read."""
    report = ImportReport(format=format, file_name=name)
    try:
        reader = import_format(format)
        report.format = reader.import_name
        dataset = reader.read(fileobj, name)
    except FormatError as exc:
        report.add_errors([(name, str(exc))])
        return report
    stored: list[Image] = []  # new images whose files are in storage
    committed = False
    try:
        committed = _import_dataset(
            project, dataset, report, name=name, user=user, create_classes=create_classes,
            stored=stored, progress=progress or (lambda done, total: None),
        )  # fmt: skip
    finally:
        if dataset.archive is not None:
            dataset.archive.close()
        if not committed:
            for image in stored:
                image.file.delete(save=False)
                image.thumbnail.delete(save=False)
    return report


def _import_dataset(
    project: Project,
    dataset: ParsedDataset,
    report: ImportReport,
    *,
    name: str,
    user,
    create_classes: bool,
    stored: list[Image],
    progress: Callable[[int, int], None],
) -> bool:
    """Check the parsed dataset against the project and write it; True once committed."""
    report.skipped.extend(dataset.skipped)
    errors: list[tuple[str, str]] = list(dataset.errors)

    # Classes, by name (case-insensitive): checked first, so that a refused import stores no image.
    classes = {c.name.lower(): c for c in project.classes.all()}
    new_classes: dict[str, str] = {}  # lower → name as first written
    for parsed in dataset.annotations:
        key = parsed.class_name.strip().lower()
        if key not in classes and key not in new_classes:
            new_classes[key] = parsed.class_name.strip()
            if not create_classes:
                errors.append(
                    (
                        parsed.location,
                        f'Unknown class "{parsed.class_name}" (the project has: '
                        f"{', '.join(c.name for c in classes.values()) or 'none'}). "
                        'Add it to the project or import with "create unknown classes".',
                    )
                )

    try:
        targets = _resolve_images(
            project, dataset, report, errors, user=user, stored=stored, progress=progress
        )
    except FormatError as exc:
        report.add_errors([(name, str(exc))])
        report.matched_images.clear()
        return False

    # Geometry, against each annotation's image.
    rows: list[tuple[_Target, str, dict, float | None]] = []
    skipped_annotations = 0
    for parsed in dataset.annotations:
        target = targets.get(parsed.image_key)
        if target is None:
            skipped_annotations += 1  # its image was skipped or refused (reported there)
            continue
        try:
            geometry = _geometry(parsed, target)
        except (_Bad, ValueError, TypeError) as exc:
            errors.append(
                (parsed.location, f"{exc} (image {target.name}, {target.width} × {target.height}).")
            )
            continue
        score = parsed.score if parsed.score is not None and 0.0 <= parsed.score <= 1.0 else None
        rows.append((target, parsed.class_name.strip().lower(), geometry, score))
        if len(errors) > 10 * MAX_ERRORS:
            break
    if skipped_annotations:
        report.skipped.append(
            (f"{skipped_annotations} annotation(s)", "Their image is not in the project (listed above).")
        )

    if errors:
        report.add_errors(errors)
        report.matched_images.clear()
        return False

    try:
        with transaction.atomic():
            order = max((c.order for c in classes.values()), default=-1) + 1
            for key, class_name in new_classes.items():
                label_class = LabelClass(
                    project=project, name=class_name[:100], color=PALETTE[order % len(PALETTE)], order=order
                )
                label_class.full_clean(exclude=["project"])
                label_class.save()
                classes[key] = label_class
                report.created_classes.append(label_class.name)
                order += 1
            for image in stored:
                try:
                    with transaction.atomic():
                        image.save()
                except IntegrityError as exc:
                    raise FormatError(
                        f"{image.original_name}: the same image was uploaded meanwhile; import again."
                    ) from exc
                report.created_images.append((image.original_name, image.pk))
            author = user if user is not None and user.is_authenticated else None
            Annotation.objects.bulk_create(
                (
                    Annotation(
                        image_id=target.pk,
                        label_class=classes[class_key],
                        score=score,
                        source=Annotation.Source.IMPORT,
                        state=Annotation.State.ACCEPTED,
                        created_by=author,
                        updated_by=author,
                        **geometry,
                    )
                    for target, class_key, geometry, score in rows
                ),
                batch_size=1000,
            )
            report.created_annotations = len(rows)
    except Exception as exc:
        report.created_classes.clear()
        report.created_images.clear()
        report.matched_images.clear()
        report.created_annotations = 0
        if isinstance(exc, FormatError):
            report.add_errors([(name, str(exc))])
            return False
        if isinstance(exc, ValidationError):
            report.add_errors([(name, f"Cannot create a class: {' '.join(exc.messages)}")])
            return False
        if isinstance(exc, IntegrityError):
            report.add_errors(
                [(name, "The project changed while importing (a class or image was added); try again.")]
            )
            return False
        raise
    return True


# The background import: start and run ---------------------------------------------------------------


def import_start(
    *, project: Project, user, fileobj: BinaryIO, name: str, format: str, create_classes: bool = False
) -> ImportJob:
    """Store the file, create the import and send its task once the transaction commits
    (ValidationError for an unknown format)."""
    try:
        reader = import_format(format)
    except FormatError as exc:
        raise ValidationError({"format": str(exc)}) from exc
    suffix = os.path.splitext(basename(name))[1].lower()[:10]
    job = ImportJob(
        project=project,
        format=reader.import_name,
        options={"create_classes": bool(create_classes)},
        file_name=basename(name)[-255:] or "upload",
        created_by=user if user is not None and user.is_authenticated else None,
    )
    if hasattr(fileobj, "seek"):
        fileobj.seek(0)
    job.file.save(f"{uuid.uuid4().hex}{suffix}", File(fileobj), save=False)
    try:
        with transaction.atomic():
            job.save()
            queues.task_send_on_commit(
                task=queues.IMPORT_RUN, args=[job.pk], failed=lambda reason: _not_queued(job.pk, reason)
            )
    except BaseException:
        job.file.delete(save=False)
        raise
    return job


def _not_queued(import_id: int, reason: str) -> None:
    _finish(import_id, JobStatus.FAILED, error=reason)
    _delete_file(import_id)


def _finish(import_id: int, status: str, **fields) -> None:
    ImportJob.objects.filter(pk=import_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=status, finished_at=timezone.now(), **fields
    )


def _delete_file(import_id: int) -> None:
    job = ImportJob.objects.filter(pk=import_id).first()
    if job is not None and job.file:
        job.file.delete(save=False)
        ImportJob.objects.filter(pk=import_id).update(file="")


def import_run(*, import_id: int) -> bool:
    """Run a queued import (the Celery task calls this). False when it was not queued (idempotent).
    A refused import ends "failed" with its report; the uploaded file is deleted either way."""
    claimed = ImportJob.objects.filter(pk=import_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return False
    job = ImportJob.objects.select_related("project", "created_by").get(pk=import_id)
    written = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done in (0, total) or now - written[0] >= PROGRESS_EVERY_S:
            written[0] = now
            ImportJob.objects.filter(pk=import_id).update(images_done=done, images_total=total)

    try:
        with job.file.open("rb") as handle:
            report = annotations_import(
                project=job.project,
                fileobj=handle,
                name=job.file_name,
                format=job.format,
                user=job.created_by,
                create_classes=bool(job.options.get("create_classes")),
                progress=progress,
            )
    except Exception as exc:
        logger.exception("Import %s failed", import_id)
        _finish(import_id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
        _delete_file(import_id)
        return True
    if report.ok:
        _finish(
            import_id, JobStatus.SUCCEEDED, report=report.as_dict(),
            annotation_count=report.created_annotations, error="",
        )  # fmt: skip
    else:
        count = len(report.errors) + report.more_errors
        where, what = report.errors[0]
        error = f"Nothing was imported: {count} error(s); the first: {where}: {what}"
        _finish(import_id, JobStatus.FAILED, report=report.as_dict(), error=error[:2000])
    _delete_file(import_id)
    return True
