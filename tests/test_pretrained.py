"""The authors' weights, fetched on request: download, cache hit, checksum refusal, interrupted
download, wrong file. Served by a local HTTP server on 127.0.0.1 whose address is passed in: these
tests never touch the real network. The served file is a real UniRepLKNet-A state_dict (random
weights, the authors' layout: a bare state_dict of the training structure), 18.9 MB like theirs."""
import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import unirep_lite as u
from unirep_lite import env, model, pretrained

ROOT = Path(__file__).resolve().parents[1]


class Server:
    """Serves `files` (path -> bytes); `mode` "full", or "cut" (announces the whole length, sends half,
    closes); counts the requests it answered."""

    def __init__(self):
        self.files, self.mode, self.requests = {}, "full", 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if server.mode == "full" else body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str, body: bytes) -> str:
        self.files["/" + name] = body
        return self.base + "/" + name


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(0)
    return u.create_model("unireplknet_a").eval()


@pytest.fixture(scope="module")
def weights(source) -> bytes:
    buf = io.BytesIO()
    torch.save(source.state_dict(), buf)
    return buf.getvalue()


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def unpublished(monkeypatch):
    """A's release without a published SHA-256: the first download's is recorded (trust on first use)."""
    monkeypatch.setitem(model.IN1K_RELEASES, "a", dataclasses.replace(model.IN1K_RELEASES["a"], sha256=None))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


A = model.IN1K_RELEASES["a"].filename


def test_download_then_cache_hit_without_a_request(tmp_path, server, weights, source, unpublished):
    url = server.url("a.pth", weights)
    path = pretrained.download("A", tmp_path, url=url, progress=False)
    assert path == tmp_path / A and path.read_bytes() == weights
    assert names(tmp_path) == [A, A + ".json"]  # no part file left
    record = json.loads((tmp_path / (A + ".json")).read_text())
    assert record["sha256"] == hashlib.sha256(weights).hexdigest() and record["published_sha256"] is False
    assert server.requests == 1
    assert pretrained.download("a", tmp_path, url=url, progress=False) == path  # cached: no request
    assert server.requests == 1
    # found in the cache by both model factories and the notebook helper, no network
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = source(x)
        assert torch.equal(u.create_model("unireplknet_a", pretrained=True, cache_dir=tmp_path).eval()(x), want)
        assert torch.equal(u.create_model("unireplknet_a", pretrained="A", cache_dir=tmp_path).eval()(x), want)
        deploy = pretrained.load_if_cached("A", tmp_path, deploy=True)
        assert deploy.deploy and torch.allclose(deploy.eval()(x), want, atol=1e-4)
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("unireplknet_a", pretrained=True, cache_dir=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(theirs.state_dict().values(), source.state_dict().values()))
    assert server.requests == 1


def test_a_changed_file_is_refused_on_every_load(tmp_path, server, weights, unpublished):
    url = server.url("a.pth", weights)
    path = pretrained.download("A", tmp_path, url=url, progress=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # one bit inside a tensor
    path.write_bytes(bytes(data))
    for load in (lambda: pretrained.cached_file("A", tmp_path),
                 lambda: pretrained.load_if_cached("A", tmp_path),
                 lambda: u.create_model("unireplknet_a", pretrained=True, cache_dir=tmp_path)):
        with pytest.raises(ValueError, match="differs from the .* recorded when it was stored"):
            load()
    with pytest.raises(ValueError, match="--force"):  # download does not silently replace it
        pretrained.download("A", tmp_path, url=url, progress=False)
    assert server.requests == 1
    assert pretrained.download("A", tmp_path, url=url, force=True, progress=False).read_bytes() == weights
    assert pretrained.cached_file("A", tmp_path) == path


def test_the_published_checksum_refuses_another_file(tmp_path, server, weights):
    assert model.IN1K_RELEASES["a"].sha256 is not None  # A's SHA-256 is published: ours differs
    with pytest.raises(ValueError, match="is not the published .* not the authors' file; nothing was stored"):
        pretrained.download("A", tmp_path, url=server.url("a.pth", weights), progress=False)
    assert names(tmp_path) == []


def test_an_interrupted_download_leaves_nothing_and_a_rerun_starts_over(tmp_path, server, weights, unpublished):
    url = server.url("a.pth", weights)
    server.mode = "cut"
    with pytest.raises(ConnectionError, match=f"stopped after {len(weights) // 2} of {len(weights)} bytes; "
                                              "nothing was stored"):
        pretrained.download("A", tmp_path, url=url, progress=False)
    assert names(tmp_path) == []
    assert pretrained.cached_file("A", tmp_path) is None
    server.mode = "full"
    assert pretrained.download("A", tmp_path, url=url, progress=False).read_bytes() == weights


def test_a_file_left_by_a_killed_download_is_removed(tmp_path, server, weights, unpublished):
    stale = tmp_path / f".{A}.part-999999999"  # no such process
    stale.write_bytes(weights[:100])
    pretrained.download("A", tmp_path, url=server.url("a.pth", weights), progress=False)
    assert names(tmp_path) == [A, A + ".json"]


class NotWeights:  # a pickled object: torch.load(weights_only=True) refuses to build it
    pass


@pytest.mark.parametrize("what", ["other structure", "code in the pickle", "not a checkpoint"])
def test_a_file_that_is_not_the_variants_weights_is_refused(tmp_path, server, unpublished, what):
    buf = io.BytesIO()
    if what == "other structure":
        torch.save(u.create_model("unireplknet_a", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32)).state_dict(), buf)
    elif what == "code in the pickle":
        torch.save({"model": NotWeights()}, buf)
    else:
        buf.write(b"<html>not found</html>")
    with pytest.raises(ValueError, match="is not weights that load strictly into unireplknet_a"):
        pretrained.download("A", tmp_path, url=server.url("a.pth", buf.getvalue()), progress=False)
    assert names(tmp_path) == []


def test_http_errors_and_a_missing_file_say_what_to_do(tmp_path, server):
    with pytest.raises(ConnectionError, match="failed after 0 bytes .*404"):
        pretrained.download("A", tmp_path, url=server.base + "/missing.pth", progress=False)
    assert names(tmp_path) == []
    assert pretrained.load_if_cached("A", tmp_path) is None
    line = pretrained.hint("A", tmp_path)
    assert "\n" not in line and f"python -m unirep_lite.pretrained download A --cache-dir {tmp_path}" in line
    with pytest.raises(FileNotFoundError, match="python -m unirep_lite.pretrained download A"):
        u.create_model("unireplknet_a", pretrained=True, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="names the weights of unireplknet_a, not of 'unireplknet_f'"):
        u.create_model("unireplknet_f", pretrained="A", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="variant must be one of A, F, P, N"):
        pretrained.download("T", tmp_path)


def test_a_file_placed_by_hand_is_checked_then_recorded(tmp_path, weights, unpublished):
    (tmp_path / A).write_bytes(weights)
    with pytest.raises(ValueError, match="no readable checksum record"):
        pretrained.cached_file("A", tmp_path)
    assert pretrained.download("A", tmp_path, progress=False) == tmp_path / A  # checked in place, no request
    assert pretrained.cached_file("A", tmp_path) == tmp_path / A


def test_the_cache_folder_comes_from_the_entry(tmp_path, monkeypatch):
    assert env.pretrained_folder({"UNIREP_PRETRAINED": str(tmp_path)}) == tmp_path.resolve()
    assert env.pretrained_folder({}) is None
    monkeypatch.setenv("UNIREP_PRETRAINED", str(tmp_path))
    assert pretrained.file_path("n") == tmp_path.resolve() / model.IN1K_RELEASES["n"].filename
    monkeypatch.delenv("UNIREP_PRETRAINED")
    assert pretrained.default_cache_dir() == Path(torch.hub.get_dir()) / "checkpoints"


def test_command_line_download_and_list(tmp_path, server, weights, unpublished, capsys):
    url = server.url("a.pth", weights)
    assert pretrained.main(["download", "A", "--cache-dir", str(tmp_path), "--url", url, "--quiet"]) == 0
    assert pretrained.main(["download", "a", "--cache-dir", str(tmp_path), "--url", url, "--quiet"]) == 0
    assert pretrained.main(["list", "--cache-dir", str(tmp_path)]) == 0
    assert pretrained.main(["where", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"A: {tmp_path / A} (stored, checked: weights only, loads strictly)"
    assert out[1] == f"A: {tmp_path / A} (cached already, SHA-256 checked)"
    assert out[2].startswith("A   18.9 MB  cached") and out[3].startswith("F   26.3 MB  not cached")
    assert out[-1] == str(tmp_path) and server.requests == 1


def test_as_a_process_a_mistake_is_one_line(tmp_path):
    environ = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "unirep_lite.pretrained", "download", "Z"], capture_output=True,
                         text=True, env=environ, cwd=ROOT, timeout=120)
    assert run.returncode == 2 and run.stderr.strip().splitlines() == [
        "python -m unirep_lite.pretrained download: error: argument VARIANT: variant must be one of A, F, P, N "
        "(the authors' ImageNet-1K weights fetched here), got 'Z' (see --help)"]
