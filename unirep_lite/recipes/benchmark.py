"""Train a recipe on its real benchmark, from a folder in the benchmark's own layout, and score it on
the benchmark's own test split with the paper's metric, printed beside the paper's number.

    python -m unirep_lite.recipes digits  --data ~/data/imagenet       # ImageNet-1K: train/ val/
    python -m unirep_lite.recipes speech  --data ~/data/speech_commands_v0.02
    python -m unirep_lite.recipes video   --data ~/data/kinetics400    # train/ val/ (+ labels.txt)
    python -m unirep_lite.recipes shapes  --data ~/data/ModelNet40
    python -m unirep_lite.recipes weather --data ~/data/global_weather  # temp.npy

The model is the recipe's (front-end + UniRepLKNet, its input size) with the benchmark's number of
classes (or stations), trained with the recipe's schedule (`recipe.config`; --epochs overrides it).
That is neither the paper's model (UniRepLKNet-S for four of the five) nor its schedule, so the
printed paper number is a reference point, not a target this run claims to reach.

Where the data go: a split whose samples are fixed (no random augmentation) and that fits in a
quarter of the device's free memory is read once, by DataLoader workers, and kept on the device
(`batches.TensorBatches`); anything else streams through DataLoader workers every epoch. Training
goes through `runs.train_runs` (and so `train.fit`), as every other run of the course.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..batches import fits_on, make_loader
from ..env import progress_bar
from ..paths import check_output_path
from ..runs import train_runs
from ..runsize import RunSize
from ..train import predict
from ..train.distributed import World
from . import audio, images, points, video, weather


def say(line: str) -> None:
    """Every line this module prints goes through here: under torchrun only process 0 prints."""
    if World.current().main:
        print(line, flush=True)


# ---------------------------------------------------------------------------- the paper's numbers

@dataclass(frozen=True)
class PaperResult:
    model: str            # the paper's model, e.g. "UniRepLKNet-S"
    benchmark: str        # e.g. "Speech Commands V2"
    metrics: dict         # metric name -> value, as this module reports it (accuracies as fractions)
    source: str           # where in the paper


# From the paper (Ding et al., CVPR 2024, arXiv 2311.15599). Table 13 (kernel sizes) gives
# UniRepLKNet-S at K = 13: 7.602 (time series) / 93.2 (ModelNet-40 OA) / 98.5 (Speech Commands V2)
# / 54.8 (Kinetics-400, from scratch); the modality sections give ModelNet-40's mAcc 90.3 and the
# global temperature forecast's MSE 7.602 / MAE 1.832 (degC). ImageNet-1K: UniRepLKNet-A's top-1,
# the recipe's default variant, from the ImageNet table (Table 5; the authors' released checkpoint is
# named unireplknet_a_in1k_224_acc77.03.pth).
PAPER = {
    "digits": PaperResult("UniRepLKNet-A", "ImageNet-1K", {"accuracy": 0.770},
                          "ImageNet-1K table (Table 5), 224 x 224"),
    "speech": PaperResult("UniRepLKNet-S", "Speech Commands V2", {"accuracy": 0.985},
                          "Table 13 (K = 13), no pretraining"),
    "video": PaperResult("UniRepLKNet-S", "Kinetics-400", {"accuracy": 0.548},
                         "Table 13 (K = 13), from scratch"),
    "shapes": PaperResult("UniRepLKNet-S", "ModelNet40", {"OA": 0.932, "mAcc": 0.903},
                          "Table 13 (OA, K = 13) and the point-cloud results (mAcc)"),
    "weather": PaperResult("UniRepLKNet-S", "global temperature, 3,850 stations",
                           {"mse": 7.602, "mae": 1.832}, "the time-series results (temperature, degC)"),
}


# ---------------------------------------------------------------------------- layouts

class LayoutError(ValueError):
    """A data folder that is not in the benchmark's layout; the message is one line."""


def _need(ok: bool, root: Path, what: str, layout: str) -> None:
    if not ok:
        raise LayoutError(f"--data {root}: {what}; expected {layout}")


def _first(folder: Path, suffixes) -> Path | None:
    """The first file under `folder` (one level down) with one of `suffixes`, without listing everything."""
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() in suffixes:
            return p
    return None


def _class_folders(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))


IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


def _check_class_tree(root: Path, split: str, suffixes, layout: str, classes=None) -> list[str]:
    """`root/split/<class>/<file>`: the split's class folders (checked against `classes` if given)."""
    folder = root / split
    _need(folder.is_dir(), root, f"no '{split}/' folder", layout)
    found = _class_folders(folder)
    _need(bool(found), root, f"'{split}/' has no class folders", layout)
    if classes is not None:
        extra = [c for c in found if c not in classes]
        _need(not extra, root, f"'{split}/' has class folders that train/ lacks: {extra[:3]}", layout)
    empty = next((c for c in found if _first(folder / c, suffixes) is None), None)
    _need(empty is None, root, f"'{split}/{empty}/' has no {'/'.join(suffixes[:3])} files", layout)
    return found


IMAGENET_LAYOUT = "ImageNet's layout: train/<class>/<image>.JPEG and val/<class>/<image>.JPEG"
SPEECH_LAYOUT = ("the Speech Commands V2 layout: <word>/<clip>.wav folders, validation_list.txt and "
                 "testing_list.txt")
KINETICS_LAYOUT = ("a Kinetics-style layout: train/<class>/<clip>.mp4 and val/<class>/<clip>.mp4 "
                   "(labels.txt, one class a line, optional)")
MODELNET_LAYOUT = "ModelNet40's layout: <class>/train/<name>.off and <class>/test/<name>.off"
WEATHER_LAYOUT = "the global weather array temp.npy, float, time x stations x 1 (hourly)"


def _check_imagenet(root: Path) -> dict:
    classes = _check_class_tree(root, "train", IMAGE_SUFFIXES, IMAGENET_LAYOUT)
    _check_class_tree(root, "val", IMAGE_SUFFIXES, IMAGENET_LAYOUT, classes)
    return {"classes": classes}


def _check_speech(root: Path) -> dict:
    from ..data.audio import NOISE_FOLDER

    for name in ("validation_list.txt", "testing_list.txt"):
        _need((root / name).is_file(), root, f"no {name}", SPEECH_LAYOUT)
    words = [w for w in _class_folders(root) if w != NOISE_FOLDER]
    _need(bool(words), root, "no word folders", SPEECH_LAYOUT)
    empty = next((w for w in words if _first(root / w, (".wav",)) is None), None)
    _need(empty is None, root, f"'{empty}/' has no .wav files", SPEECH_LAYOUT)
    return {"classes": words}


def _check_kinetics(root: Path) -> dict:
    from ..data.video import VIDEO_EXTENSIONS

    classes = _check_class_tree(root, "train", VIDEO_EXTENSIONS, KINETICS_LAYOUT)
    if (root / "labels.txt").is_file():
        from ..data.video import read_label_list

        classes = read_label_list(root / "labels.txt")
        missing = [c for c in _class_folders(root / "train") if c not in classes]
        _need(not missing, root, f"labels.txt lacks the class folders {missing[:3]}", KINETICS_LAYOUT)
    _check_class_tree(root, "val", VIDEO_EXTENSIONS, KINETICS_LAYOUT, classes)
    return {"classes": classes}


def _check_modelnet(root: Path) -> dict:
    classes = [c for c in _class_folders(root) if (root / c / "train").is_dir()]
    _need(bool(classes), root, "no '<class>/train/' folders", MODELNET_LAYOUT)
    for split in ("train", "test"):
        lacking = next((c for c in classes if not (root / c / split).is_dir()
                        or _first(root / c / split, (".off",)) is None), None)
        _need(lacking is None, root, f"no .off files in '{lacking}/{split}/'", MODELNET_LAYOUT)
    return {"classes": classes}


def _check_weather(root: Path) -> dict:
    from ..data.weather import INPUT_LEN, HORIZON, read_station_array, time_splits

    path = root / "temp.npy"
    _need(path.is_file(), root, "no temp.npy", WEATHER_LAYOUT)
    try:
        array = read_station_array(path)  # memory-mapped: only the header is read
        _need(array.shape[2] == 1, root, f"temp.npy has {array.shape[2]} features, expected 1", WEATHER_LAYOUT)
        time_splits(array.shape[0], INPUT_LEN, HORIZON)
    except LayoutError:
        raise
    except (ValueError, FileNotFoundError) as e:
        raise LayoutError(f"--data {root}: temp.npy: {str(e).splitlines()[0]}; expected {WEATHER_LAYOUT}") from None
    return {"stations": array.shape[1], "hours": array.shape[0]}


# ---------------------------------------------------------------------------- splits

def _imagenet_transforms(side: int):
    from torchvision import transforms

    norm = transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    train = transforms.Compose([transforms.RandomResizedCrop(side, antialias=True),
                                transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm])
    test = transforms.Compose([transforms.Resize(round(side / 0.875), antialias=True), transforms.CenterCrop(side),
                               transforms.ToTensor(), norm])
    return train, test


def _imagenet_split(root: Path, split: str, classes: list[str], transform):
    from ..data.images import image_folder

    ds = image_folder(root / split, transform=transform)
    index = {c: i for i, c in enumerate(classes)}  # val/ may lack classes: label ids are train/'s
    ds.samples = [(path, index[ds.classes[label]]) for path, label in ds.samples]
    ds.imgs, ds.targets, ds.classes, ds.class_to_idx = ds.samples, [y for _, y in ds.samples], classes, index
    return ds


def _imagenet(root: Path, info: dict, size: RunSize) -> dict:
    train_tf, test_tf = _imagenet_transforms(images.INPUT_SIZE[size.key])
    return {"train": _imagenet_split(root, "train", info["classes"], train_tf), "val": None,
            "test": _imagenet_split(root, "val", info["classes"], test_tf)}


def _speech(root: Path, info: dict, size: RunSize) -> dict:
    from ..data.audio import SpeechCommands

    return {s: SpeechCommands(root, s, words=info["classes"]) for s in ("train", "val", "test")}


def _kinetics(root: Path, info: dict, size: RunSize) -> dict:
    from ..data.video import NUM_FRAMES, SIZE, VideoFolder

    def split(name):
        return VideoFolder(root / name, labels=info["classes"], num_frames=NUM_FRAMES, size=SIZE)
    return {"train": split("train"), "val": None, "test": split("val")}


def _modelnet(root: Path, info: dict, size: RunSize) -> dict:
    from ..data.points import ModelNet40

    return {"train": ModelNet40(root, "train", classes=info["classes"]), "val": None,
            "test": ModelNet40(root, "test", classes=info["classes"])}


def _weather(root: Path, info: dict, size: RunSize) -> dict:
    from ..data.weather import GlobalStations

    strides = weather.STRIDES[size.key]
    return {s: GlobalStations(root / "temp.npy", s, stride=strides[s], normalize=True) for s in ("train", "val", "test")}


# ---------------------------------------------------------------------------- the five benchmarks

@dataclass(frozen=True)
class Benchmark:
    name: str
    layout: str
    check: Callable[[Path], dict]                 # layout check, before any work -> what the model needs
    splits: Callable[[Path, dict, RunSize], dict]  # "train", "val" (None: the benchmark has none), "test"
    make_model: Callable[..., torch.nn.Module]     # (variant, lk_size, size, info) -> model
    fixed_train: bool = True                      # False: random augmentation per sample, so it streams
    stackable: bool = True                        # False: samples overlap (windows), stacking copies each


BENCHMARKS = {
    "digits": Benchmark("ImageNet-1K", IMAGENET_LAYOUT, _check_imagenet, _imagenet,
                        lambda v, k, size, info: images.make_model(v, k, size, num_classes=len(info["classes"]),
                                                                   in_chans=3),
                        fixed_train=False),
    "speech": Benchmark("Speech Commands V2", SPEECH_LAYOUT, _check_speech, _speech,
                        lambda v, k, size, info: audio.make_model(v, k, size, num_classes=len(info["classes"]))),
    "video": Benchmark("Kinetics-400", KINETICS_LAYOUT, _check_kinetics, _kinetics,
                       lambda v, k, size, info: video.make_model(v, k, size, num_classes=len(info["classes"]))),
    "shapes": Benchmark("ModelNet40", MODELNET_LAYOUT, _check_modelnet, _modelnet,
                        lambda v, k, size, info: points.make_model(v, k, size, num_classes=len(info["classes"]))),
    # windows are slices of one array already in memory: stacking them would copy each hour 72 times
    "weather": Benchmark("global temperature", WEATHER_LAYOUT, _check_weather, _weather,
                         lambda v, k, size, info: weather.make_model(v, k, size, stations=info["stations"]),
                         stackable=False),
}


def check_data(name: str, root) -> dict:
    """Check that `root` is in the benchmark's layout (cheaply: no full listing); LayoutError (one line)
    naming what is missing. Returns what the model needs (classes, or the number of stations)."""
    bench = BENCHMARKS[name]
    root = Path(root).expanduser()
    _need(root.is_dir(), root, "not a folder", bench.layout)
    try:
        return bench.check(root)
    except PermissionError as e:
        raise LayoutError(f"--data {root}: {e}") from None


def check_checkpoint(path, overwrite: bool) -> Path:
    """The checkpoint path (and its `<stem>.deploy.pt`) writable, and not another run's unless `overwrite`."""
    path = check_output_path(path, "--checkpoint", make_parents=True)
    for p in (path, path.with_name(path.stem + ".deploy.pt")):
        if p.exists() and not overwrite:
            raise FileExistsError(f"--checkpoint: {p} already exists; name another file or pass --overwrite")
    return path


# ---------------------------------------------------------------------------- where the data go

def _nbytes(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.element_size() * x.nelement()
    if isinstance(x, (tuple, list)):
        return sum(_nbytes(t) for t in x)
    return 8


def fits_in_memory(ds: Dataset, device: torch.device) -> bool:
    """Whether the whole split, stacked, is a modest share of the device's (and the host's) free memory."""
    x, y = ds[0]
    if not isinstance(x, torch.Tensor):
        return False
    need = len(ds) * (_nbytes(x) + _nbytes(torch.as_tensor(y)))
    return fits_on(device, need) and fits_on(torch.device("cpu"), need)


def stack(ds: Dataset, workers: int, desc: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read every sample once, `workers` DataLoader workers in parallel, into (inputs, targets) tensors."""
    loader = DataLoader(ds, batch_size=64, num_workers=workers)
    xs, ys = [], []
    for x, y in progress_bar(loader, desc=desc, unit="batch"):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def place(splits: dict, device: torch.device, workers: int, stream: bool, fixed_train: bool,
          bench: str) -> tuple[dict, bool]:
    """Train and val as tensors on the device when both fit (else both stream), test on its own;
    returns the splits to train on and whether train/val stay on the device. `stream`: all stream."""
    present = {k: v for k, v in splits.items() if v is not None}
    fits = {k: not stream and fits_in_memory(v, device) for k, v in present.items()}
    on_device = fixed_train and all(fits[k] for k in ("train", "val") if k in present)
    out = dict(splits)
    for k, ds in present.items():
        if fits[k] and (k == "test" or on_device):
            out[k] = stack(ds, workers, f"{bench} {k}: reading into memory")
    return out, on_device


# ---------------------------------------------------------------------------- metrics

def classification_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict:
    """Overall accuracy and mean per-class accuracy (ModelNet40's OA and mAcc; the classes in `y`)."""
    right = (logits.argmax(1) == y).float()
    per_class = [right[y == c].mean().item() for c in y.unique()]
    return {"accuracy": right.mean().item(), "mAcc": float(np.mean(per_class))}


def forecast_metrics(pred: torch.Tensor, y: torch.Tensor, std) -> dict:
    """MSE and MAE in the data's own units (the windows are standardised per station: undo it)."""
    err = (pred - y) * torch.as_tensor(np.asarray(std), dtype=pred.dtype)
    return {"mse": err.pow(2).mean().item(), "mae": err.abs().mean().item()}


def score(name: str, model, test, test_ds, device, batch_size: int, workers: int) -> dict:
    """The paper's metric(s) on the test split."""
    data = test if isinstance(test, tuple) else make_loader(test, batch_size, shuffle=False, num_workers=workers,
                                                            what="test split")
    out, y = predict(model, data, device=device, batch_size=batch_size)
    if name == "weather":
        return forecast_metrics(out, y, test_ds.std)
    m = classification_metrics(out, y)
    return {"OA": m["accuracy"], "mAcc": m["mAcc"]} if name == "shapes" else {"accuracy": m["accuracy"]}


UNITS = {"mse": "degC^2", "mae": "degC"}


def describe(name: str, scores: dict) -> str:
    """'test accuracy 41.2% (paper, UniRepLKNet-S on Speech Commands V2: 98.5%; ...)'."""
    paper = PAPER[name]

    def fmt(metric, v):  # accuracies in percent; forecast errors in temp.npy's units (the paper's: degC)
        return f"{v:.3f} {UNITS[metric]}" if metric in UNITS else f"{100 * v:.1f}%"
    ours = ", ".join(f"{k} {fmt(k, v)}" for k, v in scores.items())
    theirs = ", ".join(f"{k} {fmt(k, paper.metrics[k])}" for k in scores)
    return (f"test {ours} (paper, {paper.model} on {paper.benchmark}: {theirs}; "
            f"this model and schedule are not the paper's)")


# ---------------------------------------------------------------------------- the run

def run_on_data(name: str, root, info: dict, size: RunSize, variant: str, lk_size: int, seed: int, device,
                checkpoint: Path, overwrite: bool, workers: int, stream: bool = False,
                epochs: int | None = None) -> dict:
    """Train recipe `name` on its benchmark's folder `root` (checked by `check_data`, giving `info`) and
    score it on the benchmark's test split; returns the numbers (JSON-ready) and prints one line."""
    from . import get

    recipe, bench = get(name), BENCHMARKS[name]
    device = torch.device(device)
    cfg = recipe.config(size)
    cfg = dataclasses.replace(cfg, epochs=cfg.epochs if epochs is None else epochs, num_workers=workers, device=str(device),
                              checkpoint_path=str(checkpoint), overwrite=overwrite)
    try:
        splits = bench.splits(Path(root), info, size)
    except (ValueError, FileNotFoundError) as e:  # the loaders' layout texts span lines: keep the first
        raise LayoutError(str(e).splitlines()[0]) from None
    sizes = ", ".join(f"{k} {len(v):,}" for k, v in splits.items() if v is not None)
    say(f"{bench.name} from {root}: {sizes} samples"
        + (f", {len(info['classes'])} classes" if "classes" in info else f", {info['stations']} stations"))
    placed, on_device = place(splits, device, workers, stream or not bench.stackable, bench.fixed_train,
                              bench.name)
    streamed = f"streamed by {workers} DataLoader workers" if workers else "streamed by the main process"
    say(f"training data {'kept on ' + str(device) if on_device else streamed}")
    cfg = dataclasses.replace(cfg, data_on_device=on_device)
    result = train_runs({variant: lambda: bench.make_model(variant, lk_size, size, info)},
                        placed["train"], placed["val"], cfg, seed=seed, device=device, log=say)[variant]
    scores = score(name, result.model, placed["test"], splits["test"], device, cfg.batch_size, workers)
    say(f"{name} on {bench.name} ({size.label} run, {variant}, K={lk_size}, "
        f"{cfg.epochs} epoch{'s' if cfg.epochs > 1 else ''}): "
        + describe(name, scores))
    say(f"checkpoint {checkpoint}" + (f", deploy weights {result.deploy_path}" if result.deploy_path else ""))
    return {"recipe": name, "benchmark": bench.name, "data": str(root), "variant": variant, "lk_size": lk_size,
            "seed": seed, "mode": size.name, "epochs": cfg.epochs, "test": scores,
            "paper": {"model": PAPER[name].model, **PAPER[name].metrics, "source": PAPER[name].source},
            "epoch_seconds": list(result.history.epoch_time), "wall_s": round(result.seconds, 1),
            "device": str(device), "on_device": on_device, "workers": workers,
            "deploy_check": result.deploy_check, "checkpoint": str(checkpoint)}


def write_json(path, numbers: dict) -> None:
    with open(path, "w") as f:
        json.dump(numbers, f, indent=1)


# ---------------------------------------------------------------------------- command line

def add_arguments(parser) -> None:
    """`python -m unirep_lite.recipes`'s arguments for a run on real data."""
    g = parser.add_argument_group("real data (a folder in the benchmark's own layout)")
    g.add_argument("--data", metavar="PATH",
                   help="train and test on the recipe's real benchmark in PATH: digits ImageNet-1K, speech "
                        "Speech Commands V2, video Kinetics-400, shapes ModelNet40, weather temp.npy; "
                        "the full schedule unless --fast")
    g.add_argument("--workers", type=int, default=None,
                   help="DataLoader worker processes for --data (default: up to 8, one per CPU)")
    g.add_argument("--checkpoint", metavar="PATH",
                   help="--data: the checkpoint to write (default <recipe>_<variant>_k<K>.pt here; "
                        "the deploy weights go beside it as <stem>.deploy.pt)")
    g.add_argument("--overwrite", action="store_true", help="--data: replace an existing checkpoint")
    g.add_argument("--stream", action="store_true",
                   help="--data: stream every split through DataLoader workers, even one that fits in memory")


def check_arguments(parser, args) -> None:
    """The real-data arguments, and the folder's layout, checked before anything loads."""
    import os

    if args.data is None:
        given = [flag for flag, on in (("--workers", args.workers is not None), ("--checkpoint", args.checkpoint),
                                       ("--overwrite", args.overwrite), ("--stream", args.stream)) if on]
        if given:
            parser.error(f"{given[0]} applies to a run on real data: add --data PATH")
        return
    if args.workers is None:
        args.workers = min(8, os.cpu_count() or 1)
    if args.workers < 0:
        parser.error(f"--workers: expected a number of worker processes >= 0, got {args.workers}")
    if args.checkpoint is None:
        args.checkpoint = f"{args.name}_{args.variant.lower()}_k{args.lk_size}.pt"
    try:
        args.checkpoint = check_checkpoint(args.checkpoint, args.overwrite)
        args.info = check_data(args.name, args.data)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))


def main(parser, args, device) -> dict:
    """Run `args` (checked by `check_arguments`) on `device`; --json writes the numbers too."""
    size = RunSize("fast") if args.fast else RunSize("full")
    numbers = run_on_data(args.name, Path(args.data).expanduser(), args.info, size, args.variant, args.lk_size,
                          args.seed, device, args.checkpoint, args.overwrite, args.workers, args.stream, args.epochs)
    if args.json:
        write_json(args.json, numbers)
    return numbers
