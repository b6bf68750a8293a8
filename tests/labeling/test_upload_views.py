"""Uploading through the page: POST /projects/<id>/upload/, plain and with htmx."""

from __future__ import annotations

import html
import io
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image as PILImage

from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
ACCEPTED = "JPEG, PNG, WebP, TIFF or BMP"


def upload_url(project) -> str:
    return reverse("project-upload", kwargs={"project_id": project.pk})


def files(*named_bytes: tuple[str, bytes]) -> dict:
    return {"files": [SimpleUploadedFile(name, data) for name, data in named_bytes]}


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def report_of(response) -> dict:
    """The upload report the htmx partial shows: counts, and (name, reason) per section."""
    text = response.content.decode()
    counts = dict(
        (label, int(n))
        for n, label in re.findall(r"<strong>(\d+)</strong> (added|duplicate|refused|skipped)", text)
    )

    def section(title: str, item: str) -> list[tuple[str, str]]:
        found = re.search(rf"<h3>{re.escape(title)}</h3><ul[^>]*>(.*?)</ul>", text, re.S)
        items = re.findall(item, found.group(1)) if found else []
        return [(html.unescape(a), html.unescape(b)) for a, b in items]

    return {
        "counts": counts,
        "errors": dict(section("Refused", r"<li><code>(.*?)</code>: (.*?)</li>")),
        "duplicates": section(
            "Duplicates (not stored again)", r"<li><code>(.*?)</code> is the same as <code>(.*?)</code></li>"
        ),
        "skipped": section("Skipped", r"<li><code>(.*?)</code>: (.*?)</li>"),
    }


def names_in(project) -> list[str]:
    return list(project.images.order_by("id").values_list("original_name", flat=True))


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def bomb_png() -> bytes:
    """A 1 × 1 PNG whose IHDR (with a correct CRC) declares 50000 × 50000 pixels."""
    data = bytearray(image_bytes("PNG", size=(1, 1)))
    struct.pack_into(">II", data, 16, 50_000, 50_000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def oriented_jpeg() -> bytes:
    """40 × 20, left half red, right half blue, EXIF Orientation 6 (rotate 90° clockwise)."""
    im = PILImage.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (20, 0, 40, 20))
    exif = PILImage.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def zip_of(entries) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def symlink(name: str, target: str):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


# Good images ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("JPEG", "a.jpg"), ("PNG", "b.png"), ("WEBP", "c.webp"), ("TIFF", "d.tiff"), ("BMP", "e.bmp")],
)
def test_it_stores_each_accepted_format_from_a_plain_form_post(client_for, manager, project, fmt, name):
    response = client_for(manager).post(upload_url(project), files((name, image_bytes(fmt))))
    assert response.status_code == 302
    assert response["Location"] == project.get_absolute_url()
    image = project.images.get()
    assert (image.original_name, image.format, image.width, image.height) == (name, fmt, 64, 48)
    assert "1 image(s) added." in messages_of(response)


def test_it_stores_a_batch_and_answers_htmx_with_the_report(client_for, manager, project):
    response = client_for(manager).post(
        upload_url(project),
        files(
            ("a.jpg", image_bytes("JPEG", color=(1, 1, 1))),
            ("b.png", image_bytes("PNG", color=(2, 2, 2))),
            ("c.webp", image_bytes("WEBP", color=(3, 3, 3))),
            ("d.tif", image_bytes("TIFF", color=(4, 4, 4))),
            ("e.bmp", image_bytes("BMP", color=(5, 5, 5))),
        ),
        **HTMX,
    )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "images-changed"
    report = report_of(response)
    assert report["counts"] == {"added": 5, "duplicate": 0, "refused": 0, "skipped": 0}
    assert report["errors"] == {}
    assert b"<html" not in response.content  # the partial alone
    assert project.images.count() == 5


def test_thumbnails_are_small_jpegs_served_to_members(client_for, manager, annotator, project, settings):
    settings.LABELGPT_THUMBNAIL_SIZE = 64
    client_for(manager).post(upload_url(project), files(("big.png", image_bytes("PNG", size=(640, 320)))))
    image = project.images.get()
    response = client_for(annotator).get(reverse("image-thumbnail", kwargs={"image_id": image.pk}))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    with PILImage.open(io.BytesIO(b"".join(response.streaming_content))) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (64, 32)


def test_the_image_file_is_served_as_stored(client_for, annotator, manager, project):
    data = image_bytes("PNG", size=(30, 20))
    client_for(manager).post(upload_url(project), files(("photo.png", data)))
    image = project.images.get()
    response = client_for(annotator).get(reverse("image-file", kwargs={"image_id": image.pk}))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == data
    assert 'filename="photo.png"' in response["Content-Disposition"]


def test_it_stores_an_exif_rotated_jpeg_upright(client_for, manager, project):
    client_for(manager).post(upload_url(project), files(("portrait.jpg", oriented_jpeg())), **HTMX)
    image = project.images.get()
    assert (image.width, image.height) == (20, 40)
    with PILImage.open(image.file.path) as stored:
        rgb = stored.convert("RGB")
        assert stored.size == (20, 40)
        assert rgb.getpixel((10, 5))[0] > 200  # the red half is on top
        assert rgb.getpixel((10, 35))[2] > 200  # the blue half below


# Refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_it_refuses_a_truncated_image_with_the_reason(client_for, manager, project, fmt):
    data = image_bytes(fmt, size=(200, 200), color=(20, 120, 220))
    response = client_for(manager).post(upload_url(project), files(("cut.img", data[: len(data) // 2])))
    assert any(m.startswith("cut.img: The image is corrupt or truncated") for m in messages_of(response))
    assert not project.images.exists()


def test_it_refuses_a_text_file_and_a_gif_naming_the_accepted_formats(client_for, manager, project):
    response = client_for(manager).post(
        upload_url(project),
        files(("notes.txt", b"hello, world\n"), ("anim.gif", image_bytes("GIF"))),
        **HTMX,
    )
    assert response.status_code == 200
    errors = report_of(response)["errors"]
    assert ACCEPTED in errors["notes.txt"]
    assert errors["anim.gif"].startswith("GIF images are not accepted")
    assert ACCEPTED in errors["anim.gif"]
    assert "HX-Trigger" not in response  # nothing new to show in the grid
    assert not project.images.exists()


def test_it_refuses_a_decompression_bomb_and_stores_nothing(client_for, manager, project, _media_root):
    response = client_for(manager).post(upload_url(project), files(("bomb.png", bomb_png())), **HTMX)
    reason = report_of(response)["errors"]["bomb.png"]
    assert "decompression bomb" in reason.lower()
    assert not project.images.exists()
    assert stored_files(_media_root) == []


def test_it_reports_duplicates_in_one_upload_and_in_a_later_one(client_for, manager, project):
    client = client_for(manager)
    data = image_bytes("JPEG", color=(90, 90, 0))
    first = client.post(upload_url(project), files(("one.jpg", data), ("two.jpg", data)), **HTMX)
    assert report_of(first)["duplicates"] == [("two.jpg", "one.jpg")]
    assert report_of(first)["counts"]["added"] == 1

    second = client.post(upload_url(project), files(("three.jpg", data)))
    assert "three.jpg: duplicate of one.jpg, not stored again." in messages_of(second)
    assert names_in(project) == ["one.jpg"]


def test_it_takes_the_good_images_of_a_zip_and_refuses_the_dangerous_entries(
    client_for, manager, project, tmp_path, _media_root
):
    good = image_bytes("PNG", color=(0, 128, 0))
    evil = image_bytes("PNG", color=(128, 0, 0))
    archive = zip_of(
        [
            ("good/one.png", good),
            ("good/two.jpg", image_bytes("JPEG", color=(0, 0, 128))),
            ("../evil.png", evil),
            ("/abs.png", evil),
            symlink("shortcut.png", "/etc/passwd"),
            ("README.txt", b"Sample images"),
        ]
    )
    response = client_for(manager).post(upload_url(project), files(("set.zip", archive)), **HTMX)
    report = report_of(response)
    assert report["counts"]["added"] == 2
    assert names_in(project) == ["good/one.png", "good/two.jpg"]
    errors = report["errors"]
    assert set(errors) == {"set.zip/../evil.png", "set.zip//abs.png", "set.zip/shortcut.png"}
    assert '".."' in errors["set.zip/../evil.png"]
    assert "absolute path" in errors["set.zip//abs.png"]
    assert "symbolic link" in errors["set.zip/shortcut.png"]
    assert report["skipped"] == [("set.zip/README.txt", "Not an image file.")]

    for path in tmp_path.parent.rglob("*"):
        assert path.name not in {"evil.png", "abs.png", "shortcut.png", "passwd"}, path
    assert all(p.resolve().is_relative_to(_media_root.resolve()) for p in stored_files(tmp_path))
    assert not Path("/abs.png").exists()


def test_it_refuses_a_zip_bomb(client_for, manager, project, settings):
    settings.LABELGPT_ZIP_MAX_TOTAL_BYTES = 512 * 1024
    archive = zip_of([("zeros.bmp", bytes(4 * 1024 * 1024)), ("ok.png", image_bytes("PNG"))])
    response = client_for(manager).post(upload_url(project), files(("bomb.zip", archive)))
    assert any("bomb.zip: " in m and "zip bomb protection" in m for m in messages_of(response))
    assert not project.images.exists()


def test_it_refuses_a_zip_entry_larger_than_an_image_may_be(client_for, manager, project, settings):
    settings.LABELGPT_MAX_IMAGE_BYTES = 256 * 1024
    archive = zip_of([("zeros.png", bytes(1024 * 1024)), ("ok.png", image_bytes("PNG"))])
    response = client_for(manager).post(upload_url(project), files(("set.zip", archive)), **HTMX)
    assert "per image" in report_of(response)["errors"]["set.zip/zeros.png"]
    assert names_in(project) == ["ok.png"]


def test_it_refuses_a_single_file_over_the_image_size_limit(client_for, manager, project, settings):
    big = image_bytes("BMP", size=(200, 200))
    settings.LABELGPT_MAX_IMAGE_BYTES = len(big) // 2
    response = client_for(manager).post(
        upload_url(project), files(("big.bmp", big), ("small.png", image_bytes("PNG", size=(4, 4)))), **HTMX
    )
    assert "per image" in report_of(response)["errors"]["big.bmp"]
    assert names_in(project) == ["small.png"]


def test_it_answers_413_to_a_request_over_the_upload_limit(client_for, manager, project, settings):
    settings.LABELGPT_MAX_UPLOAD_BYTES = 2000
    response = client_for(manager).post(
        upload_url(project), files(("big.bmp", image_bytes("BMP", size=(100, 100)))), **HTMX
    )
    assert response.status_code == 413
    assert b"limit" in response.content
    assert not project.images.exists()


def test_the_rest_of_the_batch_goes_in_when_one_file_is_bad(client_for, manager, project):
    response = client_for(manager).post(
        upload_url(project),
        files(
            ("good-1.png", image_bytes("PNG", color=(10, 0, 0))),
            ("bad.jpg", b"\xff\xd8\xff\xe0 broken"),
            ("good-2.jpg", image_bytes("JPEG", color=(0, 10, 0))),
        ),
    )
    messages = messages_of(response)
    assert "2 image(s) added." in messages
    assert any(m.startswith("bad.jpg: ") for m in messages)
    assert names_in(project) == ["good-1.png", "good-2.jpg"]


def test_a_failing_upload_leaves_the_existing_images_as_they_were(client_for, manager, project, _media_root):
    client = client_for(manager)
    client.post(upload_url(project), files(("keep.png", image_bytes("PNG", color=(7, 7, 7)))))
    image = project.images.get()
    before = {p: p.read_bytes() for p in stored_files(_media_root)}
    response = client.post(
        upload_url(project), files(("bomb.png", bomb_png()), ("junk.zip", b"not a zip")), **HTMX
    )
    assert set(report_of(response)["errors"]) == {"bomb.png", "junk.zip"}
    assert list(project.images.all()) == [image]
    assert {p: p.read_bytes() for p in stored_files(_media_root)} == before


def test_it_asks_for_a_file_when_none_is_sent(client_for, manager, project):
    client = client_for(manager)
    htmx = client.post(upload_url(project), {}, **HTMX)
    assert htmx.status_code == 400
    assert b'class="error"' in htmx.content
    plain = client.post(upload_url(project), {})
    assert plain.status_code == 302
    assert messages_of(plain)  # the reason is shown on the project page
    assert not project.images.exists()


def test_upload_answers_only_post(client_for, manager, project):
    assert client_for(manager).get(upload_url(project)).status_code == 405


def test_an_empty_file_is_refused_on_its_own(client_for, manager, project):
    response = client_for(manager).post(
        upload_url(project), files(("empty.png", b""), ("ok.png", image_bytes("PNG"))), **HTMX
    )
    assert response.status_code == 200
    assert report_of(response)["errors"] == {"empty.png": "The file is empty."}
    assert names_in(project) == ["ok.png"]
