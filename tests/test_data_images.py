"""Images: the offline MNIST digits (splits, determinism, no leakage) and the real-format loaders."""
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from unirep_lite.data import cache, images


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    images.build(fast=True, root=root)
    return root


def test_digits_splits_shapes_and_balance(digits_root):
    sizes = {}
    for split in images.SPLITS:
        ds = images.load(split, fast=True, root=digits_root)
        sizes[split] = len(ds)
        x, y = ds[0]
        assert ds.classes == [str(d) for d in range(10)]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32
        assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.5  # a real digit, scaled to [0, 1]
        assert np.bincount(ds.labels, minlength=10).tolist() == [images.PER_CLASS[split]] * 10
    assert sizes == {"train": 3500, "val": 500, "test": 1000}


def test_digits_no_image_in_two_splits(digits_root):
    seen = {}
    for split in images.SPLITS:
        ds = images.load(split, fast=True, root=digits_root)
        keys = {img.tobytes() for img in np.asarray(ds.images)}
        assert len(keys) == len(ds)  # no duplicates inside a split either
        seen[split] = keys
    assert not (seen["train"] & seen["test"]) and not (seen["train"] & seen["val"])
    assert not (seen["val"] & seen["test"])


def test_digits_deterministic(digits_root, tmp_path):
    again = images.build(fast=True, root=tmp_path, force=True)
    assert cache.dataset_checksum(again) == cache.dataset_checksum(digits_root / "digits")
    assert cache.verify(again) == []


def test_digits_bad_split(digits_root):
    with pytest.raises(ValueError, match="split must be one of"):
        images.load("validation", fast=True, root=digits_root)


# ---------------------------------------------------------------- ImageFolder

def _write_tree(root, classes=("cat", "dog"), per_class=3, size=(12, 10)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")


def test_image_folder_reads_tree(tmp_path):
    _write_tree(tmp_path / "tree")
    ds = images.image_folder(tmp_path / "tree")
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    x, y = ds[5]
    assert x.shape == (3, 10, 12) and y == 1
    expected = np.asarray(Image.open(tmp_path / "tree" / "dog" / "2.png"), dtype=np.float32) / 255
    assert torch.allclose(x, torch.from_numpy(expected).permute(2, 0, 1))


def test_image_folder_missing_or_empty_shows_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected an ImageFolder tree"):
        images.image_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="<class_a>/xxx.png"):
        images.image_folder(tmp_path / "empty")


def test_image_folder_corrupt_image(tmp_path):
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


# ---------------------------------------------------------------- CIFAR python batches

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


def test_cifar_reads_python_batches(tmp_path):
    _, batches = _cifar_folder(tmp_path, per_batch=4)
    train = images.cifar(tmp_path, train=True)
    test = images.cifar(tmp_path / "cifar-10-batches-py", train=False)  # the batches folder works too
    assert len(train) == 20 and len(test) == 4
    assert train.classes[3] == "c3"
    x, y = test[1]
    row = batches["test_batch"]["data"][1]
    assert x.shape == (3, 32, 32) and y == batches["test_batch"]["labels"][1]
    assert torch.allclose(x, torch.from_numpy(row.reshape(3, 32, 32).astype(np.float32) / 255))


def test_cifar_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1 ... data_batch_5"):
        images.cifar(tmp_path)
    _cifar_folder(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="malformed CIFAR batch"):
        images.cifar(tmp_path)


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


# ---------------------------------------------------------------- the data CLI

def test_cli_build_list_verify(tmp_path, monkeypatch, capsys):
    from unirep_lite.data.__main__ import main

    monkeypatch.setenv("UNIREP_DATA", str(tmp_path))
    assert main(["build", "digits", "--fast"]) == 0
    assert f"digits: {tmp_path / 'digits'}" in capsys.readouterr().out
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "digits   digits" in listing and "speech   not built" in listing
    assert main(["verify", "digits"]) == 0 and "digits: ok" in capsys.readouterr().out
    np.save(tmp_path / "digits" / "test_labels.npy", np.zeros(3, np.int64))  # tampered with
    assert main(["verify"]) == 1 and "test_labels.npy" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown dataset"):
        main(["build", "imagenet"])
