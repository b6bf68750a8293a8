"""Image ingest: labeling.ingest (validation, orientation, zips) and images_ingest."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image as PILImage

from labeling.ingest import IngestError, Limits, iter_zip, prepare_image
from labeling.models import Image
from labeling.services.images import IngestReport, image_thumbnail_rebuild, images_ingest
from labeling.services.projects import project_create
from tests.conftest import image_bytes

LIMITS = Limits(
    max_image_bytes=10 * 1024 * 1024,
    max_image_pixels=100_000_000,
    zip_max_entries=100,
    zip_max_total_bytes=100 * 1024 * 1024,
)
FORMATS = [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("TIFF", ".tif"), ("BMP", ".bmp")]


# Helpers -------------------------------------------------------------------------------------


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny, otherwise valid PNG whose header declares width × height pixels."""
    data = bytearray(image_bytes("PNG", size=(1, 1)))
    # Signature (8 bytes), then the IHDR chunk: length (4), type (4), data (13), CRC (4).
    assert data[12:16] == b"IHDR"
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def two_tone_jpeg_with_orientation(orientation: int) -> bytes:
    """A 40 × 20 JPEG: left half red, right half blue, with an EXIF Orientation tag."""
    im = PILImage.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (20, 0, 40, 20))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so the mode bits are read
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def ingest(project, *named_bytes: tuple[str, bytes], user=None) -> IngestReport:
    return images_ingest(
        project=project, files=[(name, io.BytesIO(data)) for name, data in named_bytes], user=user
    )


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def reasons(report: IngestReport) -> dict[str, str]:
    return dict(report.errors)


# prepare_image -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "extension"), FORMATS)
def test_it_accepts_every_supported_format(fmt, extension):
    prepared = prepare_image(image_bytes(fmt, size=(64, 48)), limits=LIMITS)
    assert prepared.format == fmt
    assert prepared.extension == extension
    assert (prepared.width, prepared.height) == (64, 48)
    with PILImage.open(io.BytesIO(prepared.content)) as stored:
        assert stored.format == fmt
        assert stored.size == (64, 48)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "BMP"])
def test_it_stores_an_image_without_exif_rotation_byte_for_byte(fmt):
    data = image_bytes(fmt, size=(64, 48))
    prepared = prepare_image(data, limits=LIMITS)
    assert prepared.content == data  # never re-encoded (JPEG and WebP would lose quality)


def test_it_hashes_the_uploaded_bytes():
    import hashlib

    data = image_bytes("PNG")
    assert prepare_image(data, limits=LIMITS).sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_it_refuses_a_truncated_image(fmt):
    data = image_bytes(fmt, size=(200, 200), color=(10, 200, 90))
    with pytest.raises(IngestError, match="corrupt or truncated"):
        prepare_image(data[: len(data) // 2], limits=LIMITS)


def test_it_refuses_a_text_file_naming_the_accepted_formats():
    with pytest.raises(IngestError) as info:
        prepare_image(b"just some notes\n" * 10, limits=LIMITS)
    assert "Not an image" in str(info.value)
    assert "JPEG, PNG, WebP, TIFF or BMP" in str(info.value)


def test_it_refuses_a_gif_naming_the_accepted_formats():
    with pytest.raises(IngestError) as info:
        prepare_image(image_bytes("GIF"), limits=LIMITS)
    assert "GIF images are not accepted" in str(info.value)
    assert "JPEG, PNG, WebP, TIFF or BMP" in str(info.value)


def test_it_refuses_an_empty_file():
    with pytest.raises(IngestError, match="empty"):
        prepare_image(b"", limits=LIMITS)


def test_it_refuses_a_decompression_bomb():
    with pytest.raises(IngestError) as info:
        prepare_image(bomb_png(), limits=LIMITS)
    assert "decompression bomb" in str(info.value).lower()


def test_it_refuses_an_image_over_its_own_pixel_limit():
    limits = Limits(LIMITS.max_image_bytes, 1000, LIMITS.zip_max_entries, LIMITS.zip_max_total_bytes)
    with pytest.raises(IngestError) as info:
        prepare_image(image_bytes("PNG", size=(50, 40)), limits=limits)
    assert "50 × 40 = 2,000 pixels" in str(info.value)
    assert "decompression bomb protection" in str(info.value)


def test_it_applies_its_own_pixel_limit_rather_than_pillows_warning_level(monkeypatch):
    # Pillow warns above MAX_IMAGE_PIXELS (89 M by default, below our default limit of 100 M):
    # an image under our limit but over Pillow's warning level must still be taken.
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)
    limits = Limits(LIMITS.max_image_bytes, 10_000, LIMITS.zip_max_entries, LIMITS.zip_max_total_bytes)
    prepared = prepare_image(image_bytes("PNG", size=(40, 40)), limits=limits)
    assert (prepared.width, prepared.height) == (40, 40)


def test_it_refuses_a_file_over_the_byte_limit():
    data = image_bytes("PNG", size=(64, 64))
    limits = Limits(len(data) - 1, LIMITS.max_image_pixels, 10, 10**9)
    with pytest.raises(IngestError, match="per image"):
        prepare_image(data, limits=limits)


def test_it_applies_the_exif_orientation():
    prepared = prepare_image(two_tone_jpeg_with_orientation(6), limits=LIMITS)
    assert (prepared.width, prepared.height) == (20, 40)
    with PILImage.open(io.BytesIO(prepared.content)) as stored:
        assert stored.size == (20, 40)
        assert stored.getexif().get(0x0112, 1) == 1  # no rotation left for a viewer to apply again
        top = stored.convert("RGB").getpixel((10, 5))
        bottom = stored.convert("RGB").getpixel((10, 35))
    # Orientation 6 means "rotate 90° clockwise to display": the left (red) half goes on top.
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_it_makes_a_jpeg_thumbnail_within_the_size():
    prepared = prepare_image(image_bytes("PNG", size=(800, 600)), limits=LIMITS, thumbnail_size=100)
    with PILImage.open(io.BytesIO(prepared.thumbnail)) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (100, 75)


def test_it_makes_a_thumbnail_of_a_transparent_image():
    buffer = io.BytesIO()
    PILImage.new("RGBA", (30, 30), (0, 0, 0, 0)).save(buffer, "PNG")
    prepared = prepare_image(buffer.getvalue(), limits=LIMITS)
    with PILImage.open(io.BytesIO(prepared.thumbnail)) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.convert("RGB").getpixel((15, 15)) == (255, 255, 255)


# iter_zip ------------------------------------------------------------------------------------


def test_iter_zip_yields_images_and_says_why_it_passes_over_the_rest():
    png = image_bytes("PNG")
    archive = make_zip(
        [
            ("photos/a.png", png),
            ("../evil.png", png),
            ("/abs.png", png),
            symlink_entry("link.png", "/etc/passwd"),
            ("README.txt", b"hello"),
            ("__MACOSX/._a.png", b"junk"),
        ]
    )
    entries = {e.name: e for e in iter_zip(io.BytesIO(archive), limits=LIMITS)}
    assert entries["photos/a.png"].data == png
    assert '".."' in entries["../evil.png"].error
    assert "absolute path" in entries["/abs.png"].error
    assert "symbolic link" in entries["link.png"].error
    assert entries["README.txt"].skipped == "Not an image file."
    assert entries["__MACOSX/._a.png"].skipped
    assert all(e.data is None for name, e in entries.items() if name != "photos/a.png")


def test_iter_zip_refuses_something_that_is_not_a_zip():
    with pytest.raises(IngestError, match="Not a valid zip"):
        list(iter_zip(io.BytesIO(b"PK but not really"), limits=LIMITS))


def test_iter_zip_refuses_too_many_entries():
    limits = Limits(LIMITS.max_image_bytes, LIMITS.max_image_pixels, 2, LIMITS.zip_max_total_bytes)
    archive = make_zip([(f"{i}.png", image_bytes("PNG", color=(i, 0, 0))) for i in range(3)])
    with pytest.raises(IngestError, match="3 entries"):
        list(iter_zip(io.BytesIO(archive), limits=limits))


# images_ingest -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("fmt", "extension"), FORMATS)
def test_it_stores_a_good_image_with_its_thumbnail(project, manager, settings, fmt, extension):
    settings.LABELGPT_THUMBNAIL_SIZE = 32
    data = image_bytes(fmt, size=(64, 48))
    report = ingest(project, (f"photo{extension}", data), user=manager)
    assert report.errors == []
    image = project.images.get()
    assert report.created == [(f"photo{extension}", image.pk)]
    assert (image.width, image.height, image.format) == (64, 48, fmt)
    assert image.original_name == f"photo{extension}"
    assert image.uploaded_by == manager
    assert image.status == Image.Status.NEW
    assert image.file.name.endswith(extension)
    assert Path(image.file.path).is_file()
    assert Path(image.file.path).is_relative_to(settings.MEDIA_ROOT)
    with PILImage.open(image.thumbnail.path) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) <= 32


@pytest.mark.django_db
def test_it_stores_the_rotated_pixels_of_an_exif_oriented_jpeg(project):
    ingest(project, ("portrait.jpg", two_tone_jpeg_with_orientation(6)))
    image = project.images.get()
    assert (image.width, image.height) == (20, 40)
    with PILImage.open(image.file.path) as stored:
        assert stored.size == (20, 40)
        top, bottom = stored.convert("RGB").getpixel((10, 5)), stored.convert("RGB").getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue below
    with PILImage.open(image.thumbnail.path) as thumb:
        assert thumb.height > thumb.width


@pytest.mark.django_db
def test_it_keeps_going_when_one_file_of_the_batch_is_bad(project):
    report = ingest(
        project,
        ("a.png", image_bytes("PNG", color=(1, 2, 3))),
        ("notes.txt", b"not an image"),
        ("b.jpg", image_bytes("JPEG", color=(4, 5, 6))),
    )
    assert [name for name, _ in report.created] == ["a.png", "b.jpg"]
    assert "Not an image" in reasons(report)["notes.txt"]
    assert sorted(project.images.values_list("original_name", flat=True)) == ["a.png", "b.jpg"]


@pytest.mark.django_db
def test_it_reports_a_duplicate_in_the_same_upload_without_storing_it(project, _media_root):
    data = image_bytes("PNG")
    report = ingest(project, ("first.png", data), ("again.png", data))
    assert [name for name, _ in report.created] == ["first.png"]
    assert report.duplicates == [("again.png", "first.png")]
    assert project.images.count() == 1
    assert len(stored_files(_media_root)) == 2  # one image, one thumbnail


@pytest.mark.django_db
def test_it_reports_a_duplicate_of_an_earlier_upload_without_storing_it(project, _media_root):
    data = image_bytes("JPEG")
    ingest(project, ("first.jpg", data))
    files_before = stored_files(_media_root)
    report = ingest(project, ("renamed.jpg", data))
    assert report.created == []
    assert report.duplicates == [("renamed.jpg", "first.jpg")]
    assert project.images.count() == 1
    assert stored_files(_media_root) == files_before


@pytest.mark.django_db
def test_it_stores_the_same_image_in_two_projects(project, manager):
    other = project_create(user=manager, name="Garden", classes=[{"name": "dog"}])
    data = image_bytes("PNG")
    ingest(project, ("a.png", data))
    report = ingest(other, ("a.png", data))
    assert len(report.created) == 1
    assert Image.objects.filter(sha256=project.images.get().sha256).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_it_refuses_a_truncated_file_and_stores_nothing(project, _media_root, fmt):
    data = image_bytes(fmt, size=(200, 200), color=(10, 200, 90))
    report = ingest(project, (f"broken.{fmt.lower()}", data[: len(data) // 2]))
    assert "corrupt or truncated" in reasons(report)[f"broken.{fmt.lower()}"]
    assert not project.images.exists()
    assert stored_files(_media_root) == []


@pytest.mark.django_db
def test_it_refuses_a_gif_naming_the_accepted_formats_in_the_report(project):
    report = ingest(project, ("anim.gif", image_bytes("GIF")))
    assert "JPEG, PNG, WebP, TIFF or BMP" in reasons(report)["anim.gif"]
    assert not project.images.exists()


@pytest.mark.django_db
def test_it_refuses_a_decompression_bomb_and_stores_nothing(project, _media_root):
    report = ingest(project, ("bomb.png", bomb_png()))
    assert "decompression bomb" in reasons(report)["bomb.png"].lower()
    assert not project.images.exists()
    assert stored_files(_media_root) == []


@pytest.mark.django_db
def test_it_refuses_a_file_over_the_image_size_limit(project, settings):
    big = image_bytes("PNG", size=(300, 300), color=(1, 1, 1))
    settings.LABELGPT_MAX_IMAGE_BYTES = len(big) - 1
    small = image_bytes("PNG", size=(2, 2))
    report = ingest(project, ("big.png", big), ("small.png", small))
    assert "per image" in reasons(report)["big.png"]
    assert [name for name, _ in report.created] == ["small.png"]


@pytest.mark.django_db
def test_it_leaves_existing_images_untouched_after_a_failing_upload(project, _media_root):
    ingest(project, ("keep.png", image_bytes("PNG", color=(9, 9, 9))))
    image = project.images.get()
    content = Path(image.file.path).read_bytes()
    files_before = stored_files(_media_root)
    report = ingest(project, ("bad.png", b"\x89PNG\r\n\x1a\n garbage"), ("bomb.png", bomb_png()))
    assert len(report.errors) == 2
    assert list(project.images.all()) == [image]
    assert Path(image.file.path).read_bytes() == content
    assert stored_files(_media_root) == files_before


@pytest.mark.django_db
def test_it_stores_the_images_of_a_zip_and_refuses_the_dangerous_entries(project, _media_root, tmp_path):
    good_a = image_bytes("PNG", color=(1, 100, 1))
    good_b = image_bytes("JPEG", color=(200, 100, 1))
    evil = image_bytes("PNG", color=(66, 66, 66))
    archive = make_zip(
        [
            ("set/a.png", good_a),
            ("set/b.jpg", good_b),
            ("set/a-copy.png", good_a),
            ("../evil.png", evil),
            ("/abs.png", evil),
            symlink_entry("link.png", "../../../../etc/passwd"),
            ("README.txt", b"Read me"),
        ]
    )
    report = ingest(project, ("batch.zip", archive))

    assert [name for name, _ in report.created] == ["batch.zip/set/a.png", "batch.zip/set/b.jpg"]
    assert report.duplicates == [("batch.zip/set/a-copy.png", "set/a.png")]
    errors = reasons(report)
    assert '".."' in errors["batch.zip/../evil.png"]
    assert "absolute path" in errors["batch.zip//abs.png"]
    assert "symbolic link" in errors["batch.zip/link.png"]
    assert report.skipped == [("batch.zip/README.txt", "Not an image file.")]
    assert sorted(project.images.values_list("original_name", flat=True)) == ["set/a.png", "set/b.jpg"]

    # Nothing landed outside the media folder, whatever the entry names said.
    media = _media_root.resolve()
    for path in tmp_path.parent.rglob("*"):
        assert path.name not in {"evil.png", "abs.png", "link.png", "passwd"}, path
        if path.is_file() and path.is_relative_to(tmp_path):
            assert path.resolve().is_relative_to(media), path
    assert not Path("/abs.png").exists()
    assert len(stored_files(_media_root)) == 4  # two images, two thumbnails


@pytest.mark.django_db
def test_it_refuses_a_zip_that_declares_too_many_bytes_in_all(project, settings, _media_root):
    settings.LABELGPT_ZIP_MAX_TOTAL_BYTES = 1024 * 1024
    archive = make_zip([("a.png", image_bytes("PNG")), ("padding.bmp", bytes(2 * 1024 * 1024))])
    assert len(archive) < 100 * 1024  # small on the wire, big once unpacked
    report = ingest(project, ("bomb.zip", archive), ("fine.png", image_bytes("PNG", color=(5, 5, 5))))
    assert "zip bomb protection" in reasons(report)["bomb.zip"]
    assert [name for name, _ in report.created] == ["fine.png"]
    assert list(project.images.values_list("original_name", flat=True)) == ["fine.png"]


@pytest.mark.django_db
def test_it_refuses_a_zip_entry_over_the_image_size_limit(project, settings):
    settings.LABELGPT_MAX_IMAGE_BYTES = 1024 * 1024
    archive = make_zip([("huge.png", bytes(2 * 1024 * 1024)), ("ok.png", image_bytes("PNG"))])
    report = ingest(project, ("set.zip", archive))
    assert "per image" in reasons(report)["set.zip/huge.png"]
    assert [name for name, _ in report.created] == ["set.zip/ok.png"]


@pytest.mark.django_db
def test_it_refuses_a_corrupt_zip_and_keeps_the_rest_of_the_batch(project):
    report = ingest(project, ("broken.zip", b"PK\x03\x04 not a zip"), ("ok.png", image_bytes("PNG")))
    assert "Not a valid zip" in reasons(report)["broken.zip"]
    assert [name for name, _ in report.created] == ["ok.png"]


@pytest.mark.django_db
def test_it_refuses_a_bad_image_inside_a_zip(project):
    archive = make_zip(
        [("cut.jpg", image_bytes("JPEG", size=(200, 200))[:300]), ("ok.png", image_bytes("PNG"))]
    )
    report = ingest(project, ("set.zip", archive))
    assert "set.zip/cut.jpg" in reasons(report)
    assert [name for name, _ in report.created] == ["set.zip/ok.png"]


@pytest.mark.django_db
def test_it_rebuilds_a_thumbnail_from_the_stored_file(project, settings):
    ingest(project, ("a.png", image_bytes("PNG", size=(400, 200))))
    image = project.images.get()
    Path(image.thumbnail.path).unlink()
    settings.LABELGPT_THUMBNAIL_SIZE = 50
    assert image_thumbnail_rebuild(image_id=image.pk) is True
    image.refresh_from_db()
    with PILImage.open(image.thumbnail.path) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (50, 25)
    assert image_thumbnail_rebuild(image_id=image.pk + 1000) is False
