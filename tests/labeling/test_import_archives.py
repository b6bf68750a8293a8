"""Archives are read lazily (issue 11): an import decompresses only the entries the annotation
file references (and the images it brings in), each once, one at a time, with a ratio cap
(LABELGPT_ZIP_MAX_RATIO) and the total caps; a zip bomb under every cap is refused at its
first referenced entry, naming it and the cap, with little memory."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
import zlib
from collections import Counter

import pytest

from labeling.ingest import ZipArchive
from tests.labeling.import_helpers import add_images, do_import, errors_text, png, snapshot, zip_bytes

pytestmark = pytest.mark.django_db


LOCAL = struct.Struct("<4s2B4HL2L2H")  # zipfile's structFileHeader
CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # structCentralDir
END = struct.Struct("<4s4H2LH")  # structEndArchive


def raw_zip(
    entries: list[tuple[str, bytes]], *, bomb: tuple[bytes, int, int] | None = None, bombs=()
) -> bytes:
    """A zip written by hand, so that a bomb's deflated bytes are made once and reused:
    `entries` are stored as they are; each name of `bombs` gets `bomb` = (deflated, crc, size)."""
    out = io.BytesIO()
    central = []
    items = [(name, data, 0, zlib.crc32(data), len(data)) for name, data in entries]
    items += [(name, bomb[0], 8, bomb[1], bomb[2]) for name in bombs]
    for name, data, method, crc, size in items:
        offset = out.tell()
        encoded = name.encode()
        sizes = (crc, len(data), size, len(encoded))
        out.write(LOCAL.pack(b"PK\x03\x04", 20, 0, 0, method, 0, 33, *sizes, 0) + encoded + data)
        attributes = (0, 0, 0, 0, 0o644 << 16, offset)
        central.append(
            CENTRAL.pack(b"PK\x01\x02", 20, 3, 20, 0, 0, method, 0, 33, *sizes, *attributes) + encoded
        )
    start = out.tell()
    out.write(b"".join(central))
    out.write(END.pack(b"PK\x05\x06", 0, 0, len(items), len(items), out.tell() - start, start, 0))
    return out.getvalue()


def zeros(size: int) -> tuple[bytes, int, int]:
    """`size` zero bytes, raw-deflated: (deflated, crc, size)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [packer.compress(chunk) for _ in range(size >> 20)]
    return b"".join(parts) + packer.flush(), zlib.crc32(bytes(size)), size


@pytest.fixture(scope="module")
def zeros_40mb() -> tuple[bytes, int, int]:
    return zeros(40 << 20)


@pytest.fixture
def reads(monkeypatch) -> Counter:
    """The archive entries decompressed during the test, counted."""
    counted: Counter = Counter()
    original = ZipArchive.read

    def read(self, name, **kwargs):
        counted[name] += 1
        return original(self, name, **kwargs)

    monkeypatch.setattr(ZipArchive, "read", read)
    return counted


def coco(names: list[str], annotated: str | None = None) -> str:
    images = [{"id": i, "file_name": name} for i, name in enumerate(names, start=1)]
    annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}] if annotated else []
    return json.dumps(
        {"images": images, "categories": [{"id": 1, "name": "cat"}], "annotations": annotations}
    )


def test_a_zip_bomb_under_every_cap_is_refused_at_its_first_entry_with_little_memory(
    project, zeros_40mb, reads
):
    """3.9 MB: ~95 entries of 40 MB of zeros (3.8 GB, under the 4 GB total, 50 MB per image and
    10,000 entries), half of them named by the JSON."""
    names = [f"images/b{i:03}.bmp" for i in range(95)]
    data = raw_zip([("annotations.json", coco(names[::2]).encode())], bomb=zeros_40mb, bombs=names)
    assert 3_500_000 < len(data) < 4_000_000
    before = snapshot(project)
    tracemalloc.start()
    try:
        report = do_import(project, data, format="coco", name="bomb.zip", create_classes=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not report.ok
    ((where, what),) = report.errors
    assert where == "bomb.zip" and what.startswith(
        "images/b000.bmp: the entry unpacks to more than 100 times its compressed size of 39."
    )
    assert what.endswith("KB (zip bomb protection: LABELGPT_ZIP_MAX_RATIO).")
    assert peak < 200 * 1024 * 1024
    assert set(reads) == {"annotations.json", "images/b000.bmp"}  # the first bomb stops it
    assert snapshot(project) == before


def test_one_entry_with_a_huge_ratio_is_refused_by_name(project, settings, reads):
    settings.LABELGPT_ZIP_MAX_RATIO = 50
    bomb = zeros(8 << 20)
    data = raw_zip([("annotations.json", coco(["ok.png", "big.png"]).encode()), ("images/ok.png", png())],
                   bomb=bomb, bombs=["images/big.png"])  # fmt: skip
    before = snapshot(project)
    report = do_import(project, data, format="coco", name="d.zip", create_classes=True)
    assert "images/big.png: the entry unpacks to more than 50 times its compressed size" in errors_text(
        report
    )
    assert snapshot(project) == before


def test_entries_the_file_does_not_name_are_never_read(project, zeros_40mb, reads):
    """A bomb nobody references is left alone: the import takes what the JSON names."""
    data = raw_zip(
        [("annotations.json", coco(["a.png"], annotated="a.png").encode()), ("images/a.png", png()),
         ("images/unused.png", png(color=(1, 2, 3)))],
        bomb=zeros_40mb, bombs=["images/bomb.bmp", "notes.txt"],
    )  # fmt: skip
    report = do_import(project, data, format="coco", name="d.zip", create_classes=True)
    assert report.ok, errors_text(report)
    assert [name for name, _ in report.created_images] == ["a.png"] and report.created_annotations == 1
    assert reads == Counter({"annotations.json": 1, "images/a.png": 1})  # each once


def test_yolo_reads_its_labels_and_the_images_it_brings_in_once_each(project, zeros_40mb, reads):
    data = raw_zip(
        [("data.yaml", b"names: [cat]\n"), ("images/a.png", png()), ("labels/a.txt", b"0 0.5 0.5 0.5 0.5\n"),
         ("images/b.png", png(color=(9, 9, 9)))],
        bomb=zeros_40mb, bombs=["README.txt", "other/data.yml.bak"],
    )  # fmt: skip
    report = do_import(project, data, format="yolo", create_classes=True)
    assert report.ok, errors_text(report)
    assert sorted(name for name, _ in report.created_images) == ["a.png", "b.png"]
    assert reads == Counter({"data.yaml": 1, "labels/a.txt": 1, "images/a.png": 1, "images/b.png": 1})


def test_a_bomb_in_a_label_file_or_a_voc_mask_is_refused(project, zeros_40mb):
    yolo = raw_zip([("data.yaml", b"names: [cat]\n")], bomb=zeros_40mb, bombs=["labels/a.txt"])
    report = do_import(project, yolo, format="yolo", create_classes=True)
    assert "labels/a.txt: the entry unpacks to more than 100 times" in errors_text(report)
    add_images(project, [("a.png", (64, 48))])
    xml = b"<annotation><filename>a.png</filename><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>"  # noqa: E501
    voc = raw_zip([("Annotations/a.xml", xml)], bomb=zeros_40mb, bombs=["SegmentationObject/a.png"])
    report = do_import(project, voc, format="voc", create_classes=True)
    assert "SegmentationObject/a.png: the entry unpacks to more than 100 times" in errors_text(report)


def test_small_compressible_files_pass_within_the_grace(project):
    """A label file of one line repeated compresses far past 100:1; a little of that is fine."""
    lines = b"0 0.5 0.5 0.5 0.5\n" * 2_000  # 36 KB, deflates to ~150 bytes
    data = zip_bytes({"data.yaml": "names: [cat]\n", "images/a.png": png(), "labels/a.txt": lines})
    assert zipfile.ZipFile(io.BytesIO(data)).getinfo("labels/a.txt").compress_size * 100 < len(lines)
    report = do_import(project, data, format="yolo", create_classes=True)
    assert report.ok and report.created_annotations == 2_000, errors_text(report)


def test_the_total_caps_still_hold(project, settings):
    settings.LABELGPT_ZIP_MAX_RATIO = 10_000
    settings.LABELGPT_ZIP_MAX_TOTAL_BYTES = 12 << 20
    bomb = zeros(5 << 20)
    data = raw_zip([("annotations.json", coco(["a.bmp", "b.bmp", "c.bmp"]).encode())], bomb=bomb,
                   bombs=["images/a.bmp", "images/b.bmp"])  # fmt: skip
    report = do_import(project, data, format="coco", name="d.zip", create_classes=True)
    assert not report.ok  # zeros are no image: refused one by one, within the total
    assert all("Not an image" in what for _, what in report.errors), errors_text(report)
    data = raw_zip([("annotations.json", coco(["a.bmp", "b.bmp", "c.bmp"]).encode())], bomb=bomb,
                   bombs=["images/a.bmp", "images/b.bmp", "images/c.bmp"])  # fmt: skip
    report = do_import(project, data, format="coco", name="d.zip", create_classes=True)
    assert "The archive unpacks to 15.0 MB; the limit is 12.0 MB (zip bomb protection)." in errors_text(
        report
    )


def test_an_entry_that_lies_about_its_size_is_refused(project, zeros_40mb, reads):
    """Declared small enough for the ratio cap, it unpacks to more: the read stops at the
    declared size and the archive is refused."""
    deflated, crc, _ = zeros_40mb
    liar = (deflated, crc, 50 * len(deflated))
    data = raw_zip([("annotations.json", coco(["liar.png"]).encode())], bomb=liar, bombs=["images/liar.png"])
    before = snapshot(project)
    report = do_import(project, data, format="coco", name="d.zip", create_classes=True)
    assert "images/liar.png: cannot read this entry of the archive" in errors_text(report)
    assert reads["images/liar.png"] == 1 and snapshot(project) == before


def test_an_image_named_twice_is_read_once(project, reads):
    """labels/cat.txt and labels/train/cat.txt both land on images/cat.png (the second by stem)."""
    data = zip_bytes(
        {"data.yaml": "names: [cat]\n", "images/cat.png": png(), "labels/cat.txt": "0 0.5 0.5 0.5 0.5\n",
         "labels/train/cat.txt": "0 0.25 0.25 0.25 0.25\n"}
    )  # fmt: skip
    report = do_import(project, data, format="yolo", create_classes=True)
    assert report.ok and report.created_annotations == 2, errors_text(report)
    assert [name for name, _ in report.created_images] == ["cat.png"]
    assert reads["images/cat.png"] == 1
