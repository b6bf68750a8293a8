"""Writes. Business rules live here; views and tasks call these functions."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from PIL import Image as PILImage

from ..ingest import IngestError, Limits, PreparedImage, iter_zip, make_thumbnail, prepare_image
from ..models import Image, Project

# Images --------------------------------------------------------------------------------------

logger = logging.getLogger(__name__)


@dataclass
class IngestReport:
    created: list[tuple[str, int]] = field(default_factory=list)  # (file name, image id)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (file name, existing image name)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)

    def merge(self, other: IngestReport) -> None:
        for name in ("created", "duplicates", "errors", "skipped"):
            getattr(self, name).extend(getattr(other, name))

    def as_dict(self) -> dict:
        return {
            "created": [{"name": n, "id": i} for n, i in self.created],
            "duplicates": [{"name": n, "existing": e} for n, e in self.duplicates],
            "errors": [{"name": n, "reason": r} for n, r in self.errors],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
        }


def _read_capped(fileobj: BinaryIO, limit: int) -> bytes:
    fileobj.seek(0)
    return fileobj.read(limit + 1)


def images_ingest(*, project: Project, files: Iterable[tuple[str, BinaryIO]], user=None) -> IngestReport:
    """Add uploaded files (images or zip archives of images) to a project.

    Each file succeeds or fails on its own: a bad file is reported with its reason and the
    rest of the batch still goes in. Duplicates (same bytes already in the project, or twice
    in this upload) are reported, not stored twice.
    """
    limits = Limits.from_settings()
    report = IngestReport()
    seen: dict[str, str] = {}
    for name, fileobj in files:
        if name.lower().endswith(".zip"):
            report.merge(
                _ingest_zip(project=project, name=name, fileobj=fileobj, user=user, limits=limits, seen=seen)
            )
            continue
        data = _read_capped(fileobj, limits.max_image_bytes)
        _ingest_one(project=project, name=name, data=data, user=user, limits=limits, seen=seen, report=report)
    return report


def _ingest_zip(*, project, name, fileobj, user, limits, seen) -> IngestReport:
    report = IngestReport()
    fileobj.seek(0)
    try:
        for entry in iter_zip(fileobj, limits=limits):
            shown = f"{name}/{entry.name}"
            if entry.error:
                report.errors.append((shown, entry.error))
            elif entry.skipped:
                report.skipped.append((shown, entry.skipped))
            else:
                _ingest_one(
                    project=project,
                    name=entry.name,
                    data=entry.data,
                    user=user,
                    limits=limits,
                    seen=seen,
                    report=report,
                    shown=shown,
                )
    except IngestError as exc:
        report.errors.append((name, str(exc)))
    return report


def _ingest_one(*, project, name, data, user, limits, seen, report: IngestReport, shown: str = "") -> None:
    shown = shown or name
    try:
        prepared = prepare_image(data, limits=limits, thumbnail_size=settings.LABELGPT_THUMBNAIL_SIZE)
    except IngestError as exc:
        report.errors.append((shown, str(exc)))
        return
    if prepared.sha256 in seen:
        report.duplicates.append((shown, seen[prepared.sha256]))
        return
    existing = (
        Image.objects.filter(project=project, sha256=prepared.sha256)
        .values_list("original_name", flat=True)
        .first()
    )
    if existing is not None:
        report.duplicates.append((shown, existing))
        seen[prepared.sha256] = existing
        return
    image = image_store(project=project, name=name, prepared=prepared, user=user)
    if image is None:  # lost a race with a concurrent upload of the same bytes
        report.duplicates.append((shown, name))
    else:
        report.created.append((shown, image.pk))
    seen[prepared.sha256] = name


def image_files_save(*, project: Project, name: str, prepared: PreparedImage, user) -> Image:
    """An Image whose file and thumbnail are in storage and whose row is not saved yet (the
    caller saves it, or deletes the files when it does not)."""
    image = Image(
        project=project,
        sha256=prepared.sha256,
        width=prepared.width,
        height=prepared.height,
        original_name=name[-255:],
        size_bytes=len(prepared.content),
        format=prepared.format,
        uploaded_by=user if user is not None and user.is_authenticated else None,
    )
    image.file.save(f"{prepared.sha256}{prepared.extension}", ContentFile(prepared.content), save=False)
    image.thumbnail.save(f"{prepared.sha256}.jpg", ContentFile(prepared.thumbnail), save=False)
    return image


def image_store(*, project: Project, name: str, prepared: PreparedImage, user) -> Image | None:
    """Store a prepared image (files and row); None, with nothing stored, when the project has
    an image of the same bytes already (a concurrent upload)."""
    image = image_files_save(project=project, name=name, prepared=prepared, user=user)
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        image.file.delete(save=False)
        image.thumbnail.delete(save=False)
        return None
    return image


def image_thumbnail_rebuild(*, image_id: int) -> bool:
    """Make the image's thumbnail again from its stored file; False when the image is gone."""
    image = Image.objects.filter(pk=image_id).first()
    if image is None:
        return False
    with image.file.open("rb") as handle, PILImage.open(handle) as im:
        thumb = make_thumbnail(im, settings.LABELGPT_THUMBNAIL_SIZE)
    old = image.thumbnail.name
    image.thumbnail.save(f"{image.sha256}.jpg", ContentFile(thumb), save=False)
    Image.objects.filter(pk=image.pk).update(thumbnail=image.thumbnail.name)
    if old and old != image.thumbnail.name:
        image.thumbnail.storage.delete(old)
    return True


def image_delete(*, image: Image) -> None:
    """Delete an image, its annotations and its stored files (managers; the caller checks)."""
    names = [f for f in (image.file, image.thumbnail) if f]
    with transaction.atomic():
        # The image's row first, then (the annotations' and the image's triggers) the project's
        # counts row: the order every write on an image takes them in (no deadlock with a
        # reviewer). And a reviewer's box drawn meanwhile is either refused (the lease finds no
        # image) or committed before the annotations are collected (never a foreign key error).
        Image.objects.select_for_update().filter(pk=image.pk).values_list("pk").first()
        image.delete()
    for stored in names:
        try:
            stored.storage.delete(stored.name)
        except OSError:
            logger.warning("Could not delete %s", stored.name)
