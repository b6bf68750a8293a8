"""Zip bomb benchmark (issue 11): how fast, and in how much memory, a COCO import refuses a zip
bomb under every cap, and how fast it reads a harmless archive of the same shape.

    .venv/bin/python bench/import_bomb.py                  # 95 entries of 40 MB of zeros (3.9 MB zip)
    .venv/bin/python bench/import_bomb.py --entries 200 --entry-mb 20

The bomb: a COCO JSON naming every other entry, and entries of zeros deflated ~1000:1 (3.8 GB in
all: under the 4 GB total, the 50 MB per image and the 10,000 entries). What is timed is what the
import task does before any database work: the reader (labeling.formats.coco_import.read) and
the lazy reads of the images it names (labeling.ingest.ZipArchive.read), which refuse the
archive at its first entry past LABELGPT_ZIP_MAX_RATIO. Peak memory is tracemalloc's. Issue 11
measured 26-33 s and 4.2 GB for such a zip before archives were read lazily.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

_HERE, ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from labeling.formats import coco_import  # noqa: E402


def bomb_zip(entries: int, entry_bytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    deflated = b"".join(packer.compress(chunk) for _ in range(entry_bytes >> 20)) + packer.flush()
    crc = zlib.crc32(bytes(entry_bytes))
    names = [f"images/b{i:04}.bmp" for i in range(entries)]
    document = {
        "images": [{"id": i, "file_name": n} for i, n in enumerate(names[::2], start=1)],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [],
    }
    text = json.dumps(document).encode()
    items = [("annotations.json", text, 0, zlib.crc32(text), len(text))]
    items += [(n, deflated, 8, crc, entry_bytes) for n in names]
    out, central = io.BytesIO(), []
    for name, data, method, crc32, size in items:
        offset, encoded = out.tell(), name.encode()
        sizes = (crc32, len(data), size, len(encoded))
        out.write(
            struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, method, 0, 33, *sizes, 0) + encoded + data
        )
        header = struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, method, 0, 33, *sizes,
                             0, 0, 0, 0, 0o644 << 16, offset)  # fmt: skip
        central.append(header + encoded)
    start = out.tell()
    out.write(b"".join(central))
    out.write(
        struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(items), len(items), out.tell() - start, start, 0)
    )
    return out.getvalue()


def refuse(data: bytes) -> tuple[float, int, str]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        dataset = coco_import.read(io.BytesIO(data), "bomb.zip")
        for image in dataset.images:
            dataset.archive.read(image.member, max_bytes=settings.LABELGPT_MAX_IMAGE_BYTES)
        outcome = "read everything (not refused)"
    except Exception as exc:  # FormatError from the reader, ArchiveRefused from the lazy reads
        outcome = str(exc)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak, outcome


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=95)
    parser.add_argument("--entry-mb", type=int, default=40)
    args = parser.parse_args()
    data = bomb_zip(args.entries, args.entry_mb << 20)
    declared = args.entries * args.entry_mb
    print(f"zip: {len(data) / 1e6:.1f} MB, {args.entries} entries declaring {declared:,} MB in all")
    elapsed, peak, outcome = refuse(data)
    print(f"refused in {elapsed * 1000:.0f} ms, peak {peak / 1e6:.1f} MB (traced): {outcome}")


if __name__ == "__main__":
    main()
