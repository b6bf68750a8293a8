"""A folder of cached SAM image embeddings, keyed by image sha256 and segmenter name.

One `.npz` file per (model, image): `<folder>/<model>/<sha[:2]>/<sha>.npz` holding `features`
(stored as float16 by default: 2 MB instead of 4 MB for the real models, with masks that agree
to IoU > 0.99), `original_size` and `input_size`. Files are written to a temporary name and
renamed, so readers never see half a file; an unreadable file counts as missing and is removed.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .protocols import ImageEmbedding

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_HEX = re.compile(r"[0-9a-f]{2,128}")


def safe_model_name(model_name: str) -> str:
    """A folder name for a model name; names that had to change get a short hash (no clashes)."""
    safe = _UNSAFE.sub("_", model_name).strip("._")[:80]
    if safe != model_name or not safe:
        safe = f"{safe or 'model'}-{hashlib.sha1(model_name.encode()).hexdigest()[:8]}"  # noqa: S324 (a name, not security)
    return safe


class EmbeddingCache:
    def __init__(self, folder: str | Path, dtype: str = "float16") -> None:
        self.folder = Path(folder)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"embeddings are stored as floats, not {self.dtype}")

    def path(self, sha256: str, model_name: str) -> Path:
        key = str(sha256).lower()
        if not _HEX.fullmatch(key):
            raise ValueError(f"not a hex digest: {sha256!r}")
        return self.folder / safe_model_name(model_name) / key[:2] / f"{key}.npz"

    def has(self, sha256: str, model_name: str) -> bool:
        return self.path(sha256, model_name).is_file()

    def get(self, sha256: str, model_name: str) -> ImageEmbedding | None:
        """The cached embedding (features as float32), or None when absent or unreadable."""
        path = self.path(sha256, model_name)
        try:
            with np.load(path, allow_pickle=False) as data:
                features = np.asarray(data["features"], dtype=np.float32)
                original = tuple(int(v) for v in data["original_size"])
                input_size = tuple(int(v) for v in data["input_size"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)
            return None
        if features.ndim != 4 or len(original) != 2 or len(input_size) != 2:
            path.unlink(missing_ok=True)
            return None
        return ImageEmbedding(features=features, original_size=original, input_size=input_size)

    def put(self, sha256: str, model_name: str, embedding: ImageEmbedding) -> Path:
        """Store an embedding (atomically: temporary file, then rename); returns its path."""
        path = self.path(sha256, model_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    features=np.asarray(embedding.features).astype(self.dtype),
                    original_size=np.asarray(embedding.original_size, dtype=np.int64),
                    input_size=np.asarray(embedding.input_size, dtype=np.int64),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def delete(self, sha256: str, model_name: str) -> None:
        self.path(sha256, model_name).unlink(missing_ok=True)

    def delete_image(self, sha256: str) -> int:
        """Delete the image's embeddings of every model (and their failure records); how many
        embeddings were there."""
        key = str(sha256).lower()
        if not _HEX.fullmatch(key):
            raise ValueError(f"not a hex digest: {sha256!r}")
        removed = 0
        if not self.folder.is_dir():
            return 0
        for model_folder in self.folder.iterdir():
            if not model_folder.is_dir():
                continue
            stored = model_folder / key[:2] / f"{key}.npz"
            if stored.is_file():
                stored.unlink(missing_ok=True)
                removed += 1
            stored.with_suffix(".error.json").unlink(missing_ok=True)
        return removed
