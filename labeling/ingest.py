"""Image ingest: validate uploaded files with Pillow, normalise orientation, hash, thumbnail.

Plain Python over bytes and file objects (no ORM): the services decide what to store.
Every refusal is an `IngestError` whose message is shown to the user next to the file name.
"""

from __future__ import annotations

import hashlib
import io
import stat
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from PIL import ExifTags, ImageOps, UnidentifiedImageError
from PIL import Image as PILImage

# Pillow format name → file extension we store under.
ACCEPTED_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
ACCEPTED_LABEL = "JPEG, PNG, WebP, TIFF or BMP"
ZIP_EXTENSIONS = (".zip",)


class IngestError(Exception):
    """A file (or a whole archive) that cannot be taken, with the reason for the user."""


@dataclass(frozen=True)
class Limits:
    max_image_bytes: int
    max_image_pixels: int
    zip_max_entries: int
    zip_max_total_bytes: int
    zip_max_ratio: int = 100  # an entry's uncompressed / compressed size (ZipArchive.read)

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        return cls(
            max_image_bytes=settings.LABELGPT_MAX_IMAGE_BYTES,
            max_image_pixels=settings.LABELGPT_MAX_IMAGE_PIXELS,
            zip_max_entries=settings.LABELGPT_ZIP_MAX_ENTRIES,
            zip_max_total_bytes=settings.LABELGPT_ZIP_MAX_TOTAL_BYTES,
            zip_max_ratio=settings.LABELGPT_ZIP_MAX_RATIO,
        )


@dataclass(frozen=True)
class PreparedImage:
    """A verified image ready to store: `content` is what goes to disk (orientation applied)."""

    content: bytes
    extension: str
    sha256: str  # of the uploaded bytes, so the same upload is always recognised
    width: int
    height: int
    format: str
    thumbnail: bytes  # JPEG


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def prepare_image(data: bytes, *, limits: Limits, thumbnail_size: int = 320) -> PreparedImage:
    """Verify `data` is a whole image of an accepted format within the limits; prepare it."""
    if len(data) == 0:
        raise IngestError("The file is empty.")
    if len(data) > limits.max_image_bytes:
        raise IngestError(f"The file is over the limit of {_human(limits.max_image_bytes)} per image.")
    sha256 = hashlib.sha256(data).hexdigest()
    with warnings.catch_warnings():
        # Our own pixel limit applies (checked below, before any pixel is decoded): Pillow's
        # warning level (89 M pixels) must not refuse images within it. Pillow still refuses
        # (DecompressionBombError) past twice its level.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            with PILImage.open(io.BytesIO(data)) as probe:
                fmt = probe.format
                width, height = probe.size
                if fmt not in ACCEPTED_FORMATS:
                    raise IngestError(f"{fmt} images are not accepted; use {ACCEPTED_LABEL}.")
                if width * height > limits.max_image_pixels:
                    raise IngestError(
                        f"The image declares {width} × {height} = {width * height:,} pixels; "
                        f"the limit is {limits.max_image_pixels:,} (decompression bomb protection)."
                    )
                probe.verify()
            with PILImage.open(io.BytesIO(data)) as im:
                im.load()  # decodes every pixel: catches truncated and corrupt data
                rotated = im.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9)
                # exif_transpose always returns a new image, so remember whether it rotated.
                oriented = ImageOps.exif_transpose(im)
        except IngestError:
            raise
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
            raise IngestError(
                f"The image declares more pixels than can be opened safely; the limit is "
                f"{limits.max_image_pixels:,} (decompression bomb protection)."
            ) from exc
        except UnidentifiedImageError as exc:
            raise IngestError(
                f"Not an image, or an image format that is not accepted ({ACCEPTED_LABEL})."
            ) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise IngestError(f"The image is corrupt or truncated ({exc}).") from exc

    content = data
    if rotated:
        # EXIF rotated: store the pixels as displayed so every consumer (browser, models,
        # exports) sees one geometry.
        content = _encode(oriented, fmt)
    width, height = oriented.size
    return PreparedImage(
        content=content,
        extension=ACCEPTED_FORMATS[fmt],
        sha256=sha256,
        width=width,
        height=height,
        format=fmt,
        thumbnail=make_thumbnail(oriented, thumbnail_size),
    )


def _encode(im: PILImage.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        im.convert("RGB").save(out, "JPEG", quality=95, subsampling=0)
    else:
        im.save(out, fmt)
    return out.getvalue()


def make_thumbnail(im: PILImage.Image, size: int) -> bytes:
    thumb = im.copy()
    if thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGBA")
        background = PILImage.new("RGB", thumb.size, (255, 255, 255))
        background.paste(thumb, mask=thumb.getchannel("A"))
        thumb = background
    thumb.thumbnail((size, size))
    out = io.BytesIO()
    thumb.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


# Zip archives --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipEntry:
    name: str
    data: bytes | None = None  # None when refused or skipped
    error: str = ""  # why the entry is refused
    skipped: str = ""  # why the entry is passed over (not an image)


def _unsafe_name_reason(name: str) -> str:
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(normalised).parts:
        return 'path with ".."'
    return ""


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _looks_like_image_name(name: str) -> bool:
    suffix = PurePosixPath(name).suffix.lower()
    return suffix in {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp"}


class ArchiveRefused(IngestError):
    """The whole archive is refused (unsafe names, a zip bomb): nothing of it is taken."""


def _open_zip(fileobj: BinaryIO, *, limits: Limits) -> zipfile.ZipFile:
    """The zip archive, refused whole (ArchiveRefused) when it is not a zip, has too many entries
    or declares too many bytes in all: what every reader of an uploaded archive checks first."""
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveRefused(f"Not a valid zip archive ({exc}).") from exc
    infos = archive.infolist()
    if len(infos) > limits.zip_max_entries:
        archive.close()
        raise ArchiveRefused(
            f"The archive has {len(infos):,} entries; the limit is {limits.zip_max_entries:,}."
        )
    declared = sum(info.file_size for info in infos)
    if declared > limits.zip_max_total_bytes:
        archive.close()
        raise ArchiveRefused(
            f"The archive unpacks to {_human(declared)}; the limit is "
            f"{_human(limits.zip_max_total_bytes)} (zip bomb protection)."
        )
    return archive


def iter_zip(fileobj: BinaryIO, *, limits: Limits) -> Iterator[ZipEntry]:
    """Yield the entries of a zip archive, each with its bytes or the reason it is not taken.

    The whole archive is refused (IngestError) when it is not a zip, has too many entries or
    declares too many bytes in all. Entries are read into memory with a hard cap, never
    extracted to disk by their own names, so nothing can be written outside the media folder.
    """
    archive = _open_zip(fileobj, limits=limits)
    with archive:
        infos = archive.infolist()
        total_read = 0
        for info in infos:
            name = info.filename
            if info.is_dir():
                continue
            reason = _unsafe_name_reason(name)
            if reason:
                yield ZipEntry(name, error=f"Refused: {reason} in the archive.")
                continue
            if _is_symlink(info):
                yield ZipEntry(name, error="Refused: symbolic link in the archive.")
                continue
            base = PurePosixPath(name).name
            if name.startswith("__MACOSX/") or base.startswith("."):
                yield ZipEntry(name, skipped="Hidden or system file.")
                continue
            if not _looks_like_image_name(name):
                yield ZipEntry(name, skipped="Not an image file.")
                continue
            if info.file_size > limits.max_image_bytes:
                yield ZipEntry(
                    name,
                    error=f"The file is {_human(info.file_size)}; the limit is "
                    f"{_human(limits.max_image_bytes)} per image.",
                )
                continue
            try:
                with archive.open(info) as member:
                    # Never trust the declared size: read one byte past the limit at most.
                    data = member.read(limits.max_image_bytes + 1)
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, EOFError) as exc:
                yield ZipEntry(name, error=f"Cannot read this entry ({exc}).")
                continue
            if len(data) > limits.max_image_bytes:
                yield ZipEntry(name, error="The entry unpacks to more than its declared size.")
                continue
            total_read += len(data)
            if total_read > limits.zip_max_total_bytes:
                raise IngestError("The archive unpacks to more than the size limit (zip bomb protection).")
            yield ZipEntry(name, data=data)


RATIO_GRACE_BYTES = 1024 * 1024  # bytes past the ratio cap forgiven, all entries together
READ_CHUNK = 1024 * 1024


class ZipArchive:
    """A zip archive read lazily: its entries are listed from the central directory, and each
    is decompressed only when asked for (`read`), once, streamed in chunks and counted.

    Opening refuses the whole archive (ArchiveRefused) when it is not a zip, has too many
    entries, declares too many bytes in all, or holds an absolute path, a ".." or a symbolic
    link. Reading an entry refuses the archive as soon as the entry unpacks past `max_bytes`,
    past `limits.zip_max_ratio` times its compressed size (the ratio cap: a few highly
    compressible entries cannot unpack to gigabytes; RATIO_GRACE_BYTES past the cap are
    forgiven in all, for small text files), or the entries read so far past
    `limits.zip_max_total_bytes`: the error names the entry and the cap. Hidden and system
    files (``__MACOSX/``, ``.name``) are not listed.
    """

    def __init__(self, fileobj: BinaryIO, *, limits: Limits) -> None:
        self.limits = limits
        self._zip = _open_zip(fileobj, limits=limits)
        infos = self._zip.infolist()
        refused = []
        self._infos: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.is_dir():
                continue
            reason = _unsafe_name_reason(info.filename)
            if not reason and _is_symlink(info):
                reason = "symbolic link"
            if reason:
                refused.append(f"{info.filename}: Refused: {reason} in the archive.")
                continue
            base = PurePosixPath(info.filename).name
            if not (info.filename.startswith("__MACOSX/") or base.startswith(".")):
                self._infos.setdefault(info.filename, info)
        if refused:
            self._zip.close()
            raise ArchiveRefused("The archive is refused: " + "; ".join(refused[:5]))
        self.total_read = 0
        self._grace_left = RATIO_GRACE_BYTES

    @property
    def names(self) -> list[str]:
        """The archive's files, in archive order (no folders, hidden or system files)."""
        return list(self._infos)

    @property
    def images(self) -> list[str]:
        """The files whose name says they are images (read one at a time with `read`)."""
        return [name for name in self._infos if _looks_like_image_name(name)]

    def read(self, name: str, *, max_bytes: int) -> bytes:
        """The entry's bytes, decompressed once, in chunks (see the class for the caps)."""
        info = self._infos[name]
        if info.file_size > max_bytes:
            raise ArchiveRefused(
                f"{name}: the entry is {_human(info.file_size)}; the limit is {_human(max_bytes)}."
            )
        ratio_cap = self.limits.zip_max_ratio * max(info.compress_size, 1)
        allowed = min(max_bytes, ratio_cap + self._grace_left)
        if info.file_size > allowed:  # said by the archive itself: refused before decompressing
            raise self._bomb(name, info)
        out = io.BytesIO()
        count = 0
        try:
            with self._zip.open(info) as member:
                while chunk := member.read(READ_CHUNK):
                    count += len(chunk)
                    if count > allowed:
                        raise self._bomb(name, info)
                    if self.total_read + count > self.limits.zip_max_total_bytes:
                        raise ArchiveRefused(
                            f"{name}: the entries read unpack to more than "
                            f"{_human(self.limits.zip_max_total_bytes)} (zip bomb protection)."
                        )
                    out.write(chunk)
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, EOFError) as exc:
            raise ArchiveRefused(f"{name}: cannot read this entry of the archive ({exc}).") from exc
        self.total_read += count
        self._grace_left -= max(0, count - ratio_cap)
        return out.getvalue()

    def _bomb(self, name: str, info: zipfile.ZipInfo) -> ArchiveRefused:
        return ArchiveRefused(
            f"{name}: the entry unpacks to more than {self.limits.zip_max_ratio} times its "
            f"compressed size of {_human(info.compress_size)} (zip bomb protection: "
            f"LABELGPT_ZIP_MAX_RATIO)."
        )

    def close(self) -> None:
        self._zip.close()
