"""The dataset cache (`unirep_lite.data.cache`): every build is checked when it is loaded, damage is
found and repaired, leftovers of killed or replaced builds are removed, and a reader in another
process never sees a missing file while a build is replaced."""
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from unirep_lite.data import cache

ROOT = Path(__file__).resolve().parents[1]


def _toy_builder(n_files=3, size=4000):
    def build_into(folder):
        for i in range(n_files):
            (folder / f"part{i:03d}.bin").write_bytes(bytes([i % 256]) * size)
    return build_into


def _toy(root, force=False, **kw):
    return cache.build_once("toy", _toy_builder(**kw), params={"n": 3}, root=root, force=force)


def _fresh_process():
    """Forget which files this process already checked, as a new process would."""
    cache._CHECKED.clear()


def test_cache_overwritten_bytes_are_found_and_repaired(tmp_path):
    folder = _toy(tmp_path)
    good = (folder / "part001.bin").read_bytes()
    with open(folder / "part001.bin", "r+b") as f:  # 1,000 bytes overwritten in place, same size
        f.seek(1000)
        f.write(b"\xff" * 1000)
    _fresh_process()
    with pytest.warns(UserWarning, match="part001.bin does not match its checksum.*rebuilding"):
        again = _toy(tmp_path)
    assert again == folder and (again / "part001.bin").read_bytes() == good and cache.verify(again) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _toy(tmp_path)  # intact now: no warning, no rebuild


def test_cache_change_in_this_process_is_found(tmp_path):
    folder = _toy(tmp_path)
    _toy(tmp_path)  # checked and remembered
    (folder / "part000.bin").write_bytes(b"\x00" * 3999 + b"\x01")  # a new mtime: checked again
    with pytest.warns(UserWarning, match="part000.bin does not match"):
        _toy(tmp_path)


def test_cache_deleted_file_and_broken_manifest(tmp_path):
    folder = _toy(tmp_path)
    (folder / "part002.bin").unlink()
    with pytest.warns(UserWarning, match="part002.bin is missing; rebuilding"):
        _toy(tmp_path)
    assert (folder / "part002.bin").is_file()
    (folder / cache.MANIFEST).write_text('{"files": {')
    with pytest.raises(ValueError, match="MANIFEST.json is not valid JSON.*build --force"):
        cache.read_manifest(folder)
    with pytest.warns(UserWarning, match="not valid JSON.*rebuilding"):
        _toy(tmp_path)
    assert cache.verify(folder) == []
    (folder / cache.MANIFEST).write_text('[1, 2]')
    with pytest.raises(ValueError, match="expected a JSON object with a 'files' table"):
        cache.verify(folder)


def test_cache_full_check_on_build_repairs_what_crc_misses(tmp_path):
    folder = _toy(tmp_path)
    data = bytearray((folder / "part000.bin").read_bytes())
    data[10] ^= 1
    (folder / "part000.bin").write_bytes(bytes(data))
    manifest = json.loads((folder / cache.MANIFEST).read_text())  # as if the CRC happened to match
    manifest["crc32"]["part000.bin"] = cache.file_crc32(folder / "part000.bin")
    (folder / cache.MANIFEST).write_text(json.dumps(manifest))
    assert _toy(tmp_path) == folder  # the cheap check passes ...
    folder, damaged = cache.repair(folder, lambda: _toy(tmp_path, force=True))
    assert damaged == ["part000.bin"] and cache.verify(folder) == []  # ... the full one repairs it


def test_data_cli_build_repairs(tmp_path, monkeypatch, capsys):
    from unirep_lite.data.__main__ import main

    monkeypatch.setenv("UNIREP_DATA", str(tmp_path))
    assert main(["build", "digits"]) == 0
    first = capsys.readouterr().out
    folder = tmp_path / "digits"
    labels = np.load(folder / "test_labels.npy")
    np.save(folder / "test_labels.npy", labels[::-1].copy())  # same size, other contents
    manifest = json.loads((folder / cache.MANIFEST).read_text())
    manifest["crc32"]["test_labels.npy"] = cache.file_crc32(folder / "test_labels.npy")
    (folder / cache.MANIFEST).write_text(json.dumps(manifest))
    assert main(["build", "digits"]) == 0
    out = capsys.readouterr().out
    assert "digits: rebuilt, 1 file(s) did not match MANIFEST.json: ['test_labels.npy']" in out
    assert out.splitlines()[-1] == first.splitlines()[-1]  # the same checksum as the first build
    assert np.array_equal(np.load(folder / "test_labels.npy"), labels)
    (folder / cache.MANIFEST).write_text("{")
    assert main(["verify", "digits"]) == 1 and "not valid JSON" in capsys.readouterr().out


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_cache_removes_stale_builds(tmp_path):
    folder = _toy(tmp_path)
    killed = tmp_path / f".toy.{_dead_pid()}-abc123"          # a build whose process died
    running = tmp_path / f".toy.{os.getpid()}-def456"          # a build still running (this process)
    other = tmp_path / f".toy-fast.{_dead_pid()}-abc123"       # another dataset's: not ours to judge
    for d in (killed, running, other):
        d.mkdir()
        (d / "half.bin").write_bytes(b"x")
    _toy(tmp_path)
    assert not killed.exists() and running.exists() and other.exists()
    assert (folder / "part000.bin").is_file()


def test_cache_replaced_build_kept_for_readers_then_removed(tmp_path):
    folder = _toy(tmp_path)
    before = folder.resolve()
    _toy(tmp_path, force=True)
    assert folder.resolve() != before and (before / "part000.bin").is_file()  # a reader may still be in it
    old = time.time() - cache.RETIRED_GRACE_S - 10
    os.utime(before, (old, old))
    _toy(tmp_path)
    assert not before.exists() and cache.verify(folder) == []


READER = r"""
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
target = Path({target!r})
errors = loads = 0
end = time.time() + {seconds}
while time.time() < end:
    for i in range({n}):
        try:
            with open(target / f"part{{i:03d}}.bin", "rb") as f:
                f.read(1)
            loads += 1
        except OSError:
            errors += 1
print(errors, loads)
"""


def test_cache_concurrent_reader_never_sees_a_missing_file(tmp_path):
    n = 200  # many files: removing a folder takes long enough for a reader to fall into the gap
    _toy(tmp_path, n_files=n, size=64)
    code = READER.format(root=str(ROOT), target=str(tmp_path / "toy"), seconds=4, n=n)
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)  # the reader is running
    end = time.time() + 3
    rebuilds = 0
    while time.time() < end:
        _toy(tmp_path, force=True, n_files=n, size=64)
        rebuilds += 1
    errors, loads = map(int, reader.communicate(timeout=60)[0].split())
    assert rebuilds >= 3 and loads > 1000
    assert errors == 0, f"{errors} of {loads + errors} reads failed during {rebuilds} rebuilds"


def test_cache_without_symlinks_publishes_a_folder_and_replaces_it(tmp_path, monkeypatch):
    def no_symlinks(*args, **kwargs):
        raise OSError("symbolic links are not available")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    folder = _toy(tmp_path)
    assert folder.is_dir() and not folder.is_symlink() and cache.verify(folder) == []
    assert _toy(tmp_path) == folder  # an intact build is used as is
    _toy(tmp_path, force=True)
    assert not folder.is_symlink() and cache.verify(folder) == []
    moved = [p for p in tmp_path.iterdir() if p.name.startswith(".toy.old-")]
    assert len(moved) == 1  # the replaced build, kept for readers still in it
    old = time.time() - cache.RETIRED_GRACE_S - 10
    os.utime(moved[0], (old, old))
    _toy(tmp_path)
    assert not moved[0].exists()


def test_cache_manifest_without_crcs_is_rebuilt(tmp_path):
    folder = _toy(tmp_path)
    manifest = json.loads((folder / cache.MANIFEST).read_text())
    del manifest["crc32"]
    (folder / cache.MANIFEST).write_text(json.dumps(manifest))
    assert cache.quick_check(folder) == [f"part00{i}.bin has no size or CRC-32 in MANIFEST.json" for i in range(3)]
    with pytest.warns(UserWarning, match="has no size or CRC-32"):
        _toy(tmp_path)
    assert cache.quick_check(folder) == []


def test_a_manifest_that_lies_by_omission_is_a_damaged_build(tmp_path):
    folder = _toy(tmp_path)
    manifest = json.loads((folder / cache.MANIFEST).read_text())
    for table in ("files", "sizes", "crc32"):
        manifest[table] = {}                                  # the file list emptied ...
    (folder / cache.MANIFEST).write_text(json.dumps(manifest))
    (folder / "part001.bin").unlink()                         # ... then a file deleted
    _fresh_process()
    problems = cache.quick_check(folder)
    assert "MANIFEST.json lists no files" in problems and "part000.bin is not listed in MANIFEST.json" in problems
    with pytest.warns(UserWarning, match="lists no files.*rebuilding"):
        again = _toy(tmp_path)
    assert (again / "part001.bin").is_file() and cache.verify(again) == []


def test_a_data_folder_that_is_a_file_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="cannot be used .*set UNIREP_DATA to a writable folder"):
        _toy(tmp_path / "file")
