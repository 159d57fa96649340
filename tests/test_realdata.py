"""`python -m unirep_lite.recipes NAME --data PATH` on generated folders in each real benchmark's
layout: it trains (one epoch of the FAST model), reports the paper's metric beside the paper's number
and writes the checkpoint; a folder that is not in the layout is one line naming what is missing."""
import json

import numpy as np
import pytest
import torch

from unirep_lite.recipes import __main__ as cli
from unirep_lite.recipes import benchmark


def write_images(root, classes=("cat", "dog"), per_split=None):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (per_split or {"train": 6, "val": 2}).items():
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / split / c / f"{i}.JPEG")


def write_speech(root, words=("yes", "no"), per_word=6):
    from scipy.io import wavfile

    rng = np.random.default_rng(0)
    val, test = [], []
    for w in words:
        (root / w).mkdir(parents=True)
        for i in range(per_word):
            wavfile.write(root / w / f"{i:08x}_nohash_0.wav", 16000, rng.integers(-3000, 3000, 16000, dtype=np.int16))
        val.append(f"{w}/{0:08x}_nohash_0.wav")
        test += [f"{w}/{1:08x}_nohash_0.wav", f"{w}/{2:08x}_nohash_0.wav"]
    (root / "_background_noise_").mkdir()
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")


BOX_OFF = """OFF
8 6 0
0 0 0\n1 0 0\n1 1 0\n0 1 0\n0 0 {h}\n1 0 {h}\n1 1 {h}\n0 1 {h}
4 0 3 2 1\n4 4 5 6 7\n4 0 1 5 4\n4 1 2 6 5\n4 2 3 7 6\n4 3 0 4 7
"""


def write_modelnet(root, classes=("airplane", "bathtub"), per_split=(("train", 4), ("test", 2))):
    for k, c in enumerate(classes):
        for split, n in per_split:
            (root / c / split).mkdir(parents=True)
            for i in range(n):
                (root / c / split / f"{c}_{i:04d}.off").write_text(BOX_OFF.format(h=0.2 + 2 * k + 0.1 * i))


def write_kinetics(root, write_mp4, classes=("abseiling", "juggling"), per_split=(("train", 4), ("val", 2))):
    for k, c in enumerate(classes):
        for split, n in per_split:
            for i in range(n):
                write_mp4(root / split / c / f"{c}_{i}.mp4", 6, size=(16, 16), level=lambda t: 20 * t * (k + 1) + i)
    (root / "labels.txt").write_text("\n".join(classes) + "\n")


def write_weather(root, hours=800, stations=4):
    t = np.arange(hours)[:, None]
    temp = 10 + 5 * np.sin(2 * np.pi * t / 24 + np.arange(stations)) + np.random.default_rng(0).normal(
        0, 0.3, (hours, stations))
    root.mkdir()
    np.save(root / "temp.npy", temp[..., None].astype(np.float32))


@pytest.fixture
def folders(tmp_path, write_mp4):
    """A tiny folder in each benchmark's layout, by recipe name."""
    out = {name: tmp_path / name for name in ("digits", "speech", "video", "shapes", "weather")}
    write_images(out["digits"])
    write_speech(out["speech"])
    write_kinetics(out["video"], write_mp4)
    write_modelnet(out["shapes"])
    write_weather(out["weather"])
    return out


def run_cli(*argv):
    return cli.main([str(a) for a in argv])


# the metric names each benchmark reports, as the paper does
METRICS = {"digits": ["accuracy"], "speech": ["accuracy"], "video": ["accuracy"], "shapes": ["OA", "mAcc"],
           "weather": ["mse", "mae"]}


def test_every_benchmark_trains_and_reports_the_paper_number(folders, tmp_path, capsys, one_thread):
    for name, root in folders.items():
        ckpt = tmp_path / "out" / f"{name}.pt"
        workers = 1 if name == "digits" else 0  # one run through a worker process is enough
        numbers = run_cli(name, "--data", root, "--fast", "--epochs", "1", "--workers", workers,
                          "--checkpoint", ckpt, "--json", tmp_path / f"{name}.json")
        out = capsys.readouterr().out
        paper = benchmark.PAPER[name]
        assert sorted(numbers["test"]) == sorted(METRICS[name]), name
        assert all(np.isfinite(v) for v in numbers["test"].values())
        line = next(ln for ln in out.splitlines() if "(paper, " in ln)
        assert f"{paper.model} on {paper.benchmark}" in line and "not the paper's" in line
        first = METRICS[name][0]
        shown = f"{100 * paper.metrics[first]:.1f}%" if name != "weather" else f"{paper.metrics[first]:.3f} degC^2"
        assert f"{first} {shown}" in line, line
        assert ckpt.is_file() and ckpt.with_name(f"{name}.deploy.pt").is_file()
        assert json.loads((tmp_path / f"{name}.json").read_text())["test"] == numbers["test"]
        assert numbers["epochs"] == 1 and len(numbers["epoch_seconds"]) == 1


def test_classes_and_test_split_are_the_benchmarks(folders):
    """Label ids follow train/'s classes even where val/ lacks one; the test split is the benchmark's own."""
    import shutil

    root = folders["digits"]
    shutil.rmtree(root / "val" / "cat")
    info = benchmark.check_data("digits", root)
    splits = benchmark.BENCHMARKS["digits"].splits(root, info, benchmark.RunSize("fast"))
    assert splits["test"].classes == ["cat", "dog"] and set(splits["test"].targets) == {1}
    speech = benchmark.check_data("speech", folders["speech"])
    s = benchmark.BENCHMARKS["speech"].splits(folders["speech"], speech, benchmark.RunSize("fast"))
    assert speech["classes"] == ["no", "yes"] and [len(s[k]) for k in ("train", "val", "test")] == [6, 2, 4]
    model = benchmark.BENCHMARKS["weather"].make_model("unireplknet_a", 3, benchmark.RunSize("fast"), {"stations": 6})
    assert model(torch.zeros(2, 48, 6)).shape == (2, 24, 6)


def test_small_splits_stay_on_the_device_large_ones_stream(folders):
    info = benchmark.check_data("shapes", folders["shapes"])
    splits = benchmark.BENCHMARKS["shapes"].splits(folders["shapes"], info, benchmark.RunSize("fast"))
    placed, on_device = benchmark.place(splits, torch.device("cpu"), 0, False, True, "ModelNet40")
    assert on_device and isinstance(placed["train"], tuple) and placed["train"][0].shape == (8, 1024, 3)
    placed, on_device = benchmark.place(splits, torch.device("cpu"), 0, True, True, "ModelNet40")  # --stream
    assert not on_device and placed["train"] is splits["train"]


def test_metrics():
    logits = torch.tensor([[2.0, 0], [0, 1], [0, 1], [0, 1]])
    m = benchmark.classification_metrics(logits, torch.tensor([0, 0, 1, 1]))
    assert m["accuracy"] == 0.75 and m["mAcc"] == 0.75
    m = benchmark.classification_metrics(logits, torch.tensor([0, 1, 1, 1]))
    assert m["accuracy"] == 1.0 and m["mAcc"] == 1.0
    f = benchmark.forecast_metrics(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), np.array([2.0, 4.0]))
    assert f == {"mse": 10.0, "mae": 3.0}


def _break(name, root):
    """One thing each layout needs, removed; returns what the error must name."""
    import shutil

    if name == "digits":
        shutil.rmtree(root / "val")
        return "no 'val/' folder"
    if name == "speech":
        (root / "testing_list.txt").unlink()
        return "no testing_list.txt"
    if name == "video":
        for f in (root / "train" / "juggling").iterdir():
            f.unlink()
        return "'train/juggling/' has no"
    if name == "shapes":
        shutil.rmtree(root / "bathtub" / "test")
        return "no .off files in 'bathtub/test/'"
    np.save(root / "temp.npy", np.zeros((50, 3, 1), np.float32))
    return "fewer than input_len + horizon"


@pytest.mark.parametrize("name", ["digits", "speech", "video", "shapes", "weather"])
def test_a_folder_not_in_the_layout_is_one_line(name, folders, tmp_path, capsys):
    message = _break(name, folders[name])
    with pytest.raises(SystemExit) as exit_:
        run_cli(name, "--data", folders[name], "--checkpoint", tmp_path / "x.pt")
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert "expected" in err and not (tmp_path / "x.pt").exists()


def test_an_existing_checkpoint_is_kept(folders, tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    ckpt.write_text("another run's")
    with pytest.raises(SystemExit):
        run_cli("weather", "--data", folders["weather"], "--checkpoint", ckpt)
    assert "already exists" in capsys.readouterr().err and ckpt.read_text() == "another run's"
