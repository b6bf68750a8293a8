"""fetch_checkpoint (torch.hub's downloader) against a local http.server: download once, cache,
checksum, failures; and the official SAM checkpoints' pinned sha256 passed by the registry."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inference import registry
from inference.download import fetch_checkpoint
from inference.errors import ModelLoadError

PAYLOAD = bytes(range(256)) * 5000  # 1.25 MB: more than one read chunk
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(monkeypatch):
    """Serves PAYLOAD at /weights/<name>.pth on 127.0.0.1; counts the requests per path."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    requests: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests[self.path] += 1
            if not self.path.startswith("/weights/"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.requests = requests
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_first_call_downloads_and_second_uses_the_cache(server, tmp_path, capsys, caplog):
    url = f"{server.url}/weights/sam_test.pth"

    with caplog.at_level(logging.INFO, logger="inference.download"):
        first = fetch_checkpoint(url, tmp_path / "cache")
        second = fetch_checkpoint(url, tmp_path / "cache")

    assert first == second == tmp_path / "cache" / "sam_test.pth"
    assert first.read_bytes() == PAYLOAD
    assert server.requests["/weights/sam_test.pth"] == 1
    assert sorted(p.name for p in first.parent.iterdir()) == ["sam_test.pth"]  # no .partial left
    assert [r.getMessage() for r in caplog.records] == [f"Downloading {url} into {first}"]
    assert "100%" in capsys.readouterr().err  # torch.hub's progress bar


def test_a_matching_checksum_is_accepted(server, tmp_path):
    path = fetch_checkpoint(
        f"{server.url}/weights/ok.pth", tmp_path, sha256=PAYLOAD_SHA.upper(), progress=False
    )

    assert path.read_bytes() == PAYLOAD


def test_a_checksum_mismatch_raises_and_leaves_no_file(server, tmp_path):
    wrong = "0" * 64

    with pytest.raises(ModelLoadError) as raised:
        fetch_checkpoint(f"{server.url}/weights/bad.pth", tmp_path / "cache", sha256=wrong, progress=False)

    assert wrong in str(raised.value)
    assert PAYLOAD_SHA in str(raised.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_http_error_raises_model_load_error(server, tmp_path):
    with pytest.raises(ModelLoadError, match="404"):
        fetch_checkpoint(f"{server.url}/missing/sam.pth", tmp_path / "cache", progress=False)

    assert list((tmp_path / "cache").iterdir()) == []


def test_an_unreachable_server_raises_model_load_error(server, tmp_path):
    url = f"{server.url}/weights/sam.pth"
    server.shutdown()
    server.server_close()

    with pytest.raises(ModelLoadError, match="Could not download"):
        fetch_checkpoint(url, tmp_path, progress=False)


def test_only_http_urls_are_fetched(tmp_path):
    with pytest.raises(ModelLoadError, match="Not an http"):
        fetch_checkpoint("file:///etc/passwd", tmp_path)


def test_a_url_without_a_file_name_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="file name"):
        fetch_checkpoint("http://127.0.0.1:9/", tmp_path)


def test_segmenter_load_fetches_a_url_checkpoint_into_the_cache_dir(server, tmp_path):
    from inference.models.sam import SamSegmenter

    url = f"{server.url}/weights/sam_vit_b_test.pth"  # serves bytes that are not a checkpoint

    with pytest.raises(ModelLoadError, match="could not be read as PyTorch weights"):
        SamSegmenter.load("vit_b", checkpoint=url, device="cpu", cache_dir=tmp_path / "ckpt")

    assert (tmp_path / "ckpt" / "sam_vit_b_test.pth").read_bytes() == PAYLOAD
    assert server.requests["/weights/sam_vit_b_test.pth"] == 1


@pytest.fixture
def fetches(monkeypatch, clean_registry):
    """Records the fetch_checkpoint calls the loaders make, and refuses them (no network)."""
    from inference import download

    calls = []

    def record(url, cache_dir, *, sha256=None, progress=True):
        calls.append({"url": url, "cache_dir": cache_dir, "sha256": sha256})
        raise ModelLoadError("not fetched in tests")

    monkeypatch.setattr(download, "fetch_checkpoint", record)
    return calls


@pytest.mark.parametrize(
    ("name", "sha256"),
    [
        ("vit_b", "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
        ("vit_l", "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
        ("vit_h", "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
    ],
)
def test_a_worker_downloads_the_official_checkpoint_with_its_sha256_pinned(fetches, tmp_path, name, sha256):
    config = registry.ModelConfig(mode="real", models_dir=tmp_path, device="cpu")

    with pytest.raises(ModelLoadError, match="not fetched"):
        registry.get_segmenter(config, name)

    (call,) = fetches
    assert call["url"].startswith(f"https://dl.fbaipublicfiles.com/segment_anything/sam_{name}_")
    assert call["sha256"] == sha256
    assert call["cache_dir"] == tmp_path / "checkpoints"


def test_a_configured_checkpoint_url_has_no_pinned_sha256(fetches, tmp_path):
    url = "http://models.example/sam_vit_b_finetuned.pth"
    config = registry.ModelConfig(
        mode="real", models_dir=tmp_path, device="cpu", sam_checkpoints={"vit_b": url}
    )

    with pytest.raises(ModelLoadError, match="not fetched"):
        registry.get_segmenter(config, "vit_b")

    assert fetches == [{"url": url, "cache_dir": tmp_path / "checkpoints", "sha256": None}]
