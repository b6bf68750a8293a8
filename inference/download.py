"""Fetch a model checkpoint over http(s) once, into a cache folder, with torch.hub's downloader."""

from __future__ import annotations

import http.client
import logging
import re
import urllib.error
from pathlib import Path
from urllib.parse import unquote, urlparse

from .errors import ModelLoadError

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def is_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def checkpoint_filename(url: str) -> str:
    """The cache file name for a URL: the last segment of its path, made filesystem-safe."""
    name = _SAFE_NAME.sub("_", unquote(Path(urlparse(url).path).name)).lstrip(".")
    if not name:
        raise ModelLoadError(f"Cannot tell a file name from the URL {url!r}: it must end in a file name.")
    return name


def fetch_checkpoint(url: str, cache_dir: Path, *, sha256: str | None = None, progress: bool = True) -> Path:
    """The local path of the file at `url`, downloaded into `cache_dir` on the first call only.

    The file is named after the URL's last path segment. `torch.hub.download_url_to_file`
    writes it to a temporary `<name>.<uuid>.partial` file and moves it into place only when it
    is complete and, when `sha256` is given, its sha256 matches (the official SAM checkpoints
    have theirs pinned in `inference.models.sam_decoder.CHECKPOINTS`), so a crash or a
    concurrent worker never leaves a partial or corrupt file under the final name; its tqdm
    progress bar goes to stderr. A file already in the cache is returned as is, without any
    network access. Every failure raises ModelLoadError.
    """
    from torch.hub import download_url_to_file

    if not is_url(url):
        raise ModelLoadError(f"Not an http(s) URL: {url!r}.")
    cache_dir = Path(cache_dir)
    target = cache_dir / checkpoint_filename(url)
    if target.is_file():
        return target
    expected = sha256.strip().lower() if sha256 else None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelLoadError(f"Cannot write into the checkpoint cache {cache_dir}: {error}") from error
    log.info("Downloading %s into %s", url, target)
    try:
        download_url_to_file(url, str(target), hash_prefix=expected, progress=progress)
    except RuntimeError as error:  # torch.hub's hash check (the partial file is already removed)
        if expected is None or "invalid hash value" not in str(error):
            raise
        raise ModelLoadError(
            f"Checksum mismatch for {url}: {error}. The file was deleted; check the URL and the "
            "expected sha256."
        ) from error
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        raise ModelLoadError(
            f"Could not download {url}: {error}. Without network access, download the file "
            f"yourself and give its local path instead of the URL (or put it at {target})."
        ) from error
    return target
