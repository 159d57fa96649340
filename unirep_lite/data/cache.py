"""Where offline datasets live, and how each is built exactly once.

A dataset is a folder `<data_root>/<name>/` holding whatever files its builder writes plus a
`MANIFEST.json` (builder version, parameters, SHA-256 of every file). A folder without a manifest
is a half-finished build and is rebuilt; builds happen in a temporary folder that is renamed into
place only when complete, so an interrupted build never leaves a dataset that looks finished.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..env import resolve_fast

MANIFEST = "MANIFEST.json"


def data_root() -> Path:
    """The cache folder: $UNIREP_DATA, else `data/` of a source checkout, else ~/.cache/unirep_lite.

    Found from the package's own location, never the working directory, so that JupyterLab, Binder,
    Colab and the book build all see the same data.
    """
    env = os.environ.get("UNIREP_DATA")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "unirep_lite").is_dir():
        return checkout / "data"
    return Path.home() / ".cache" / "unirep_lite"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def folder_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below `folder` (manifest excluded), keyed by relative posix path."""
    return {
        p.relative_to(folder).as_posix(): file_digest(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def dataset_checksum(folder: Path) -> str:
    """One SHA-256 over the whole dataset: equal seeds and parameters must give equal checksums."""
    manifest = read_manifest(folder)
    h = hashlib.sha256()
    for rel, digest in sorted(manifest["files"].items()):
        h.update(f"{rel}:{digest}\n".encode())
    return h.hexdigest()


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {MANIFEST}: it is not a finished dataset build")
    return json.loads(path.read_text())


def verify(folder: Path) -> list[str]:
    """Files whose contents no longer match the manifest (missing ones included); [] when intact."""
    folder = Path(folder)
    expected = read_manifest(folder)["files"]
    actual = folder_digests(folder)
    return sorted(rel for rel, digest in expected.items() if actual.get(rel) != digest)


def build_once(
    name: str,
    builder: Callable[[Path], None],
    *,
    params: dict,
    version: int = 1,
    root: Path | None = None,
    force: bool = False,
) -> Path:
    """Return `<root>/<name>`, calling `builder(tmp_folder)` first unless an identical build exists.

    `params` (seed, sizes, ...) and `version` are recorded; a cached build made with other values is
    rebuilt rather than silently reused.
    """
    root = Path(root) if root is not None else data_root()
    target = root / name
    wanted = {"name": name, "version": version, "params": params}
    if not force and (target / MANIFEST).is_file():
        manifest = read_manifest(target)
        if {k: manifest.get(k) for k in wanted} == json.loads(json.dumps(wanted)):
            return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        builder(tmp)
        manifest = dict(wanted, files=folder_digests(tmp))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_modality(name: str, params_for: Callable[[bool], dict], builder_for: Callable[[dict], Callable[[Path], None]],
                   *, version: int, fast: bool | None = None, root: Path | None = None, force: bool = False,
                   separate_fast: bool = True) -> Path:
    """The `build()` shared by the modality modules: params from the FAST switch, then `build_once`.

    Fast and full builds live side by side (`<name>-fast` and `<name>`), so switching UNIREP_FAST
    never forces a rebuild; `separate_fast=False` is for datasets whose fast and full builds are equal.
    """
    fast = resolve_fast(fast)
    params = params_for(fast)
    folder = name + ("-fast" if fast and separate_fast else "")
    return build_once(folder, builder_for(params), params=params, version=version, root=root, force=force)
