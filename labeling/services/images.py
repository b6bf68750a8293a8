"""Writes. Business rules live here; views and tasks call these functions."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image as PILImage

from ..ingest import IngestError, Limits, PreparedImage, iter_zip, make_thumbnail, prepare_image
from ..models import Image, Project
from .prelabel import embedding_cache
from .review import Conflict

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


@dataclass(frozen=True)
class ImagesDeleted:
    """What images_delete did: the images deleted (ids) with their annotations, and the images
    left because someone else holds them in review ((id, name, who))."""

    deleted: list[int]
    annotations: int
    held: list[tuple[int, str, str]]


def images_delete(*, project: Project, image_ids: Iterable[int], user=None) -> ImagesDeleted:
    """Delete these images of the project (ids of other projects are ignored) with their
    annotations, their stored files and thumbnails, and the SAM embeddings of their bytes that no
    other image (of any project) still uses. An image someone else holds in review (an unexpired
    lease of another user) is left as it is and reported in `held`: the rest are deleted. Managers
    and staff only: the caller checks. `user`: who deletes (None: no one's lease is theirs).

    The images' rows are locked first (in id order), then their annotations and rows deleted in one
    transaction (the triggers then take the project's counts row: the lock order of every write on
    an image, so no deadlock with a reviewer, and a box drawn meanwhile is either refused, the lease
    finding no image, or committed before the annotations are collected). The files go after the
    commit; a file that cannot be deleted is logged, not an error."""
    wanted = sorted({int(pk) for pk in image_ids})
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Image.objects.select_for_update()
            .filter(project=project, pk__in=wanted)
            .order_by("id")
            .values("id", "original_name", "file", "thumbnail", "sha256", "assignee_id", "lease_expires_at",
                    "annotation_count")
        )  # fmt: skip
        user_id = user.pk if user is not None and user.is_authenticated else None
        held_rows = [
            r
            for r in rows
            if r["assignee_id"] is not None
            and r["assignee_id"] != user_id
            and r["lease_expires_at"] is not None
            and r["lease_expires_at"] > now
        ]
        holders = {r["assignee_id"] for r in held_rows}
        names = dict(get_user_model().objects.filter(pk__in=holders).values_list("pk", "username"))
        held = [(r["id"], r["original_name"], names.get(r["assignee_id"], "")) for r in held_rows]
        held_ids = {r["id"] for r in held_rows}
        doomed = [r for r in rows if r["id"] not in held_ids]
        doomed_ids = [r["id"] for r in doomed]
        if doomed_ids:
            Image.objects.filter(pk__in=doomed_ids).delete()
    shas = {r["sha256"] for r in doomed}
    # An embedding is keyed by the bytes (sha256) and the segmenter: kept while any image of any
    # project (this one included) still has those bytes.
    used = set(Image.objects.filter(sha256__in=shas).values_list("sha256", flat=True)) if shas else set()
    transaction.on_commit(lambda: _files_delete(doomed, shas - used))
    annotations = sum(r["annotation_count"] for r in doomed)
    return ImagesDeleted(deleted=doomed_ids, annotations=annotations, held=held)


def stored_files_delete(names: Iterable[str]) -> int:
    """Remove these files (names in the media storage; empty ones are passed over) after their rows
    are gone: a file whose removal fails is logged and left. How many were removed."""
    storage = Image._meta.get_field("file").storage
    removed = 0
    for name in filter(None, names):
        try:
            storage.delete(name)
            removed += 1
        except OSError:
            logger.warning("Could not delete %s", name)
    return removed


def _files_delete(rows: list[dict], unused_shas: set[str]) -> None:
    """The deleted images' files and thumbnails, and the embeddings no image uses any more."""
    stored_files_delete(name for row in rows for name in (row["file"], row["thumbnail"]))
    try:
        embedding_cache().delete_every_model(sorted(unused_shas))
    except (OSError, ValueError):
        logger.warning("Could not delete the embeddings of %d image(s)", len(unused_shas))


def image_delete(*, image: Image, user=None) -> None:
    """Delete one image (the API's DELETE): images_delete with that image; refused (Conflict, 409)
    when someone else holds it in review."""
    result = images_delete(project=image.project, image_ids=[image.pk], user=user)
    if result.held:
        _, name, who = result.held[0]
        raise Conflict(f"{who or 'Someone'} is reviewing {name}: it is not deleted.", held_by=who)
