"""Fetch a model checkpoint over http(s) once, into a cache folder (urllib, no extra dependency)."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from .errors import ModelLoadError

CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def is_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def checkpoint_filename(url: str) -> str:
    """The cache file name for a URL: the last segment of its path, made filesystem-safe."""
    name = _SAFE_NAME.sub("_", unquote(Path(urlparse(url).path).name)).lstrip(".")
    if not name:
        raise ModelLoadError(f"Cannot tell a file name from the URL {url!r}: it must end in a file name.")
    return name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_checkpoint(
    url: str,
    cache_dir: Path,
    *,
    sha256: str | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """The local path of the file at `url`, downloaded into `cache_dir` on the first call only.

    The file is named after the URL's last path segment. It is written to a temporary
    `<name>.*.part` file in `cache_dir` and renamed into place only when complete (and, when
    `sha256` is given, verified), so a crash or a concurrent worker never leaves a partial file
    under the final name. A tqdm progress bar goes to stderr. A file already in the cache is
    returned as is, without any network access. Every failure raises ModelLoadError.
    """
    if not is_url(url):
        raise ModelLoadError(f"Not an http(s) URL: {url!r}.")
    cache_dir = Path(cache_dir)
    name = checkpoint_filename(url)
    target = cache_dir / name
    if target.is_file():
        return target
    expected = sha256.strip().lower() if sha256 else None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, part_name = tempfile.mkstemp(dir=cache_dir, prefix=f"{name}.", suffix=".part")
    except OSError as error:
        raise ModelLoadError(f"Cannot write into the checkpoint cache {cache_dir}: {error}") from error
    part = Path(part_name)
    digest = hashlib.sha256()
    received = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "labelgpt"})  # noqa: S310 (scheme checked)
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(request, timeout=timeout) as response,  # noqa: S310
        ):
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"Downloading {name}",
                file=sys.stderr,
                disable=not progress,
            ) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise ModelLoadError(f"Download of {url} stopped after {received} of {total} bytes; try again.")
        got = digest.hexdigest()
        if expected is not None and got != expected:
            raise ModelLoadError(
                f"Checksum mismatch for {url}: expected sha256 {expected}, got {got}. "
                f"The file was deleted; check the URL and the expected checksum."
            )
        os.replace(part, target)
    except ModelLoadError:
        part.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        part.unlink(missing_ok=True)
        raise ModelLoadError(
            f"Could not download {url}: {error}. Without network access, download the file "
            f"yourself and give its local path instead of the URL (or put it at {target})."
        ) from error
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return target
