"""Issue 17's table of bad inputs and faults, one test (or a few) per row, so that it stays true:
a clear error that names what was expected, a correct result, or a documented refusal; nothing
silently wrong, no work lost, no code run from data files.

Rows 4 (CIFAR pickles), 5 (the dataset cache), 7 (output paths of the CLIs) and 9 (errors from deep
inside torch: loaders, ERF, widgets, CLIs) are here; training, checkpoints and exports have their own.
"""
import json
import os
import pickle
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from unirep_lite.data import cache, images, points, video, weather

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------ row 4: CIFAR batches run no code

def _cifar_folder(root, protocol=pickle.DEFAULT_PROTOCOL, per_batch=3):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {"batch_label": name, "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                         "labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                         "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batches[name], protocol=protocol))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]},
                                                       protocol=protocol))
    return folder, batches


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_plain_batches_load_with_any_protocol(tmp_path, protocol):
    folder, batches = _cifar_folder(tmp_path, protocol)
    ds = images.cifar(tmp_path, train=True)
    assert len(ds) == 15 and ds.classes[2] == "c2"
    x, y = ds[4]
    row = batches["data_batch_2"]["data"][1]
    assert y == batches["data_batch_2"]["labels"][1]
    assert torch.allclose(x, torch.from_numpy(row.reshape(3, 32, 32).astype(np.float32) / 255))


@pytest.mark.parametrize("where", ["data_batch_3", "batches.meta"])
def test_cifar_batch_that_runs_a_command_is_refused(tmp_path, where):
    folder, batches = _cifar_folder(tmp_path)
    marker = tmp_path / "pwned"
    payload = dict(batches.get(where, {"label_names": ["x"] * 10}), labels=_RunsCode(marker))
    (folder / where).write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match=f"{where}: malformed CIFAR batch.*refusing to load global '(posix|os|nt).system'"):
        images.cifar(tmp_path, train=True)
    assert not marker.exists()


def test_cifar_wrong_contents_named(tmp_path):
    folder, _ = _cifar_folder(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"test_batch: malformed CIFAR batch \('data' must be a uint8 array"):
        images.cifar(tmp_path, train=False)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 99]}))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\)"):
        images.cifar(tmp_path, train=False)


# ------------------------------------------------------------ row 5: the dataset cache

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
    legacy = tmp_path / ".toy-abcd1234"                        # the earlier layout's temporary folder
    other = tmp_path / f".toy-fast.{_dead_pid()}-abc123"       # another dataset's: not ours to judge
    for d in (killed, running, legacy, other):
        d.mkdir()
        (d / "half.bin").write_bytes(b"x")
    old = time.time() - cache.LEGACY_STALE_S - 10
    os.utime(legacy, (old, old))
    _toy(tmp_path)
    assert not killed.exists() and not legacy.exists() and running.exists() and other.exists()
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


def test_cache_earlier_layout_is_used_then_replaced(tmp_path):
    legacy = tmp_path / "toy"
    legacy.mkdir()
    _toy_builder()(legacy)
    cache.write_manifest(legacy, {"name": "toy", "version": 1, "params": {"n": 3}})
    assert _toy(tmp_path) == legacy and not legacy.is_symlink()  # a finished old-layout build is used
    _toy(tmp_path, force=True)
    assert legacy.is_symlink() and cache.verify(legacy) == []


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


# ------------------------------------------------------------ row 9: loaders

def test_image_folder_corrupt_image(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / c / "ok.png")
    (tmp_path / "dog" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ds = images.image_folder(tmp_path)
    bad = [i for i, (p, _) in enumerate(ds.samples) if p.endswith("bad.png")][0]
    with pytest.raises(ValueError, match=r"bad.png: not a readable image \(UnidentifiedImageError"):
        ds[bad]
    with pytest.warns(UserWarning, match="skipped 1 unreadable file"):
        ds = images.image_folder(tmp_path, on_error="skip")
    assert len(ds) == 2 and len(ds.targets) == 2 and "bad.png" in ds.skipped[0]
    assert ds[1][0].shape == (3, 8, 8)
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        images.image_folder(tmp_path, on_error="ignore")


def test_video_folder_listed_but_missing_file(tmp_path, write_mp4):
    write_mp4(tmp_path / "Walk" / "a.mp4", 4, size=(16, 16), level=lambda i: 20 * i)
    (tmp_path / "labels.txt").write_text("Walk\n")
    (tmp_path / "split.txt").write_text("Walk/a.mp4\nWalk/gone.mp4\n")
    with pytest.raises(FileNotFoundError, match=r"1 video\(s\) listed in .*split.txt do not exist.*gone.mp4"):
        video.VideoFolder(tmp_path, split_file=tmp_path / "split.txt")
    with pytest.warns(UserWarning, match="gone.mp4"):
        ds = video.VideoFolder(tmp_path, split_file=tmp_path / "split.txt", num_frames=2, on_error="skip")
    assert len(ds) == 1 and "gone.mp4" in ds.skipped[0] and ds[0][0].shape == (2, 3, 16, 16)


def test_modelnet_file_name_not_utf8(tmp_path):
    folder = tmp_path / "chair" / "train"
    folder.mkdir(parents=True)
    name = os.path.join(os.fsencode(folder), b"chair_\xff\xfe.off")
    try:
        with open(name, "wb") as f:
            f.write(b"OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n")
    except OSError:
        pytest.skip("this file system does not allow file names that are not UTF-8")
    ds = points.ModelNet40(tmp_path, "train", num_points=64)
    assert ds[0][0].shape == (64, 3)


@pytest.mark.parametrize("kw, message", [
    ({"stride": 0}, "stride must be an integer >= 1"),
    ({"horizon": -5}, "horizon must be an integer >= 1"),
    ({"input_len": 0}, "input_len must be an integer >= 1"),
    ({"stride": 1.5}, "stride must be an integer >= 1"),
    ({"gap": -1}, "gap must be an integer >= 0"),
])
def test_station_windows_bad_sizes(kw, message):
    array = np.zeros((600, 2, 1), np.float32)
    with pytest.raises(ValueError, match=message):
        weather.StationWindows(array, "train", **{"input_len": 48, "horizon": 24, **kw},
                               feature_names=["temperature"])


# ------------------------------------------------------------ row 9: ERF and widgets

def _tiny_unireplknet():
    import unirep_lite

    return unirep_lite.create_model("unireplknet_a", num_classes=3, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))


def test_compute_erf_bad_images(one_thread):
    from unirep_lite import erf

    model = _tiny_unireplknet()
    for bad, message in ((torch.zeros(0, 3, 32, 32), "at least one image"),
                         (torch.zeros(3, 32, 32), r"shape \(N, C, H, W\)"),
                         (torch.full((1, 3, 32, 32), float("nan")), "NaN or inf")):
        with pytest.raises(ValueError, match=message):
            erf.compute_erf(model, bad, progress=False)


@pytest.mark.parametrize("merge", [True, False])
def test_compute_erf_leaves_callers_model_as_it_was(one_thread, merge):
    from unirep_lite import erf

    model = _tiny_unireplknet().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = erf.compute_erf(model, torch.randn(2, 3, 32, 32), stage=1, progress=False, merge=merge)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # BN statistics too
    assert np.isfinite(e.raw).all() and e.raw.sum() > 0


def test_load_images_not_an_image(tmp_path):
    from unirep_lite import erf

    (tmp_path / "fake.png").write_text("this is text")
    with pytest.raises(ValueError, match=r"fake.png: not a readable image \(UnidentifiedImageError"):
        erf.load_images(tmp_path, n=1, resolution=16)


def test_widgets_show_errors_instead_of_raising(tmp_path):
    from unirep_lite import widgets

    (tmp_path / "fake.png").write_text("this is text")
    ex = widgets.ERFExplorer(source=str(tmp_path), progress=False)
    ui = ex.widget(resolutions=(32,), n_images=1)  # computes at once: shows the error, raises nothing
    assert "not a readable image" in ui.controls["message"].value

    start = time.perf_counter()
    ui = widgets.kernel_explorer(13)
    ui.controls["K"].value = 99999
    assert f"K must be an odd integer from 1 to {widgets.MAX_K}" in ui.controls["message"].value
    assert time.perf_counter() - start < 60  # bounded: no 40 GB kernel was allocated
    with pytest.raises(ValueError, match="K must be an odd integer"):
        widgets.render_block(99999, (5,), (1,))


# ------------------------------------------------------------ rows 7 and 9: the command lines

@pytest.mark.parametrize("argv, message", [
    (["--device", "gpu"], "--device: expected cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["--train-res", "abc"], "--train-res: expected a comma list of resolutions"),
    (["--train-res", "0"], "--train-res: expected positive resolutions"),
    (["--infer-batch", "0"], "--infer-batch: expected a positive integer"),
    (["--json", "/missing/x.json"], "the folder /missing does not exist"),
])
def test_bench_cli_rejects_bad_arguments_first(argv, message, capsys):
    from unirep_lite import bench

    with pytest.raises(SystemExit) as exit_:
        bench.parse(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_bench_cli_no_device_backend(capsys):
    from unirep_lite import bench

    if not torch.backends.mps.is_available():
        with pytest.raises(SystemExit) as exit_:
            bench.parse(["--device", "mps"])
        assert exit_.value.code == 2 and "MPS backend is not available" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench.parse(["--device", "cuda"])


def test_bench_every_row_failed_is_a_failure(monkeypatch, tmp_path, capsys):
    from unirep_lite import bench

    def failing(args):
        rows = bench.plan(args)
        for r in rows:
            r.error = "RuntimeError: no such device"
        return rows

    monkeypatch.setattr(bench, "run", failing)
    with pytest.raises(SystemExit, match="every benchmark failed on cpu"):
        bench.main(["--quick", "--json", str(tmp_path / "rows.json")])
    assert not (tmp_path / "rows.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["digits", "--lk-size", "4"], "--lk-size 4: block kernel size must be a positive odd integer"),
    (["digits", "--lk-size", "0"], "--lk-size 0: block kernel size must be a positive odd integer"),
    (["digits", "--lk-size", "19"], "--lk-size 19: no default Dilated Reparam branches for K=19"),
    (["digits", "--variant", "bogus"], "--variant: expected one of unireplknet_a"),
    (["digits", "--epochs", "0"], "--epochs: expected a positive number of epochs, got 0"),
    (["digits", "--json", "{tmp}"], "is a folder; expected the path of a file"),
    (["digits", "--json", "{tmp}/no/x.json"], "does not exist"),
])
def test_recipes_cli_rejects_bad_arguments_before_loading(argv, message, tmp_path, monkeypatch, capsys):
    from unirep_lite.recipes import __main__ as cli

    def must_not_run(*a, **k):
        raise AssertionError("the recipe started before its arguments were checked")

    monkeypatch.setattr(cli, "run", must_not_run)
    with pytest.raises(SystemExit) as exit_:
        cli.main([a.format(tmp=tmp_path) for a in argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
