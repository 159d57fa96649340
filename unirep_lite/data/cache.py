"""Where offline datasets live, and how each is built exactly once.

A dataset `<data_root>/<name>` is a symbolic link to a finished build folder `.<name>.<pid>-<id>/`
that holds whatever files its builder wrote plus a `MANIFEST.json` (builder version, parameters, and
for every file its size, CRC-32 and SHA-256). Why this layout:

* A build is written into its own hidden folder and published by replacing the link in one atomic
  `rename`, so a reader in another process sees the old dataset or the new one, never a missing
  file. A replaced build is kept for `RETIRED_GRACE_S` (a reader may still be opening it), then removed.
* Each load checks every file's size and CRC-32 (GB/s; once per process while the file is unchanged)
  and rebuilds a damaged or incomplete dataset with a warning; `verify` and
  `python -m unirep_lite.data build`/`verify` compare full SHA-256 digests.
* A killed build leaves a folder without a manifest; the next build removes it once its process is
  gone (or after `STALE_BUILD_S` when that cannot be told).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
import warnings
import zlib
from pathlib import Path
from typing import Callable

from ..env import data_folder

MANIFEST = "MANIFEST.json"
RETIRED_GRACE_S = 600          # a replaced build lives this long after the swap, for readers still opening it
STALE_BUILD_S = 24 * 3600      # an unfinished build whose owner cannot be checked is dropped after this


def data_root() -> Path:
    """The cache folder: $UNIREP_DATA, else `data/` of a source checkout, else ~/.cache/unirep_lite.

    Found from the package's own location, never the working directory, so that JupyterLab, Binder,
    Colab and the book build all see the same data.
    """
    chosen = data_folder()
    if chosen is not None:
        return chosen
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


def file_crc32(path: Path) -> int:
    """CRC-32 of a file: the cheap check made at every load (about 3x faster than SHA-256)."""
    crc = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


def _files(folder: Path) -> list[Path]:
    return [p for p in sorted(Path(folder).rglob("*")) if p.is_file() and p.name != MANIFEST]


def dataset_checksum(folder: Path) -> str:
    """One SHA-256 over the whole dataset: equal seeds and parameters must give equal checksums."""
    manifest = read_manifest(folder)
    h = hashlib.sha256()
    for rel, digest in sorted(manifest["files"].items()):
        h.update(f"{rel}:{digest}\n".encode())
    return h.hexdigest()


def read_manifest(folder: Path) -> dict:
    """The build's MANIFEST.json; FileNotFoundError / ValueError naming the file and the fix."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {MANIFEST}: it is not a finished dataset build; "
                                "build it with `python -m unirep_lite.data build`")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); rebuild the dataset with "
                         "`python -m unirep_lite.data build --force`") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ValueError(f"{path}: expected a JSON object with a 'files' table; rebuild the dataset with "
                         "`python -m unirep_lite.data build --force`")
    return manifest


def verify(folder: Path) -> list[str]:
    """Files whose contents no longer match the manifest's SHA-256 (missing ones included); [] when intact."""
    folder = Path(folder)
    expected = read_manifest(folder)["files"]
    problems = []
    for rel, digest in sorted(expected.items()):
        path = folder / rel
        if not path.is_file() or file_digest(path) != digest:
            problems.append(rel)
    return problems


_CHECKED: set[tuple] = set()  # (path, inode, size, mtime) of files whose CRC matched, this process


def quick_check(folder: Path, manifest: dict | None = None) -> list[str]:
    """What is wrong with a build, cheaply: missing files, wrong sizes, CRC-32 mismatches ([] if none).

    A file is read once per process while its inode, size and modification time stay the same.
    """
    folder = Path(folder)
    manifest = read_manifest(folder) if manifest is None else manifest
    sizes, crcs = manifest.get("sizes") or {}, manifest.get("crc32") or {}
    problems = [] if manifest["files"] else [f"{MANIFEST} lists no files"]
    # a manifest that lies by omission: files the build holds that it does not list
    problems += [f"{rel} is not listed in {MANIFEST}" for rel in
                 sorted(p.relative_to(folder).as_posix() for p in _files(folder)) if rel not in manifest["files"]]
    for rel in sorted(manifest["files"]):
        path = folder / rel
        try:
            st = path.stat()
        except FileNotFoundError:
            problems.append(f"{rel} is missing")
            continue
        if rel not in sizes or rel not in crcs:
            problems.append(f"{rel} has no size or CRC-32 in {MANIFEST}")
            continue
        if st.st_size != sizes[rel]:
            problems.append(f"{rel} has {st.st_size} bytes, expected {sizes[rel]}")
            continue
        key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
        if key in _CHECKED:
            continue
        if file_crc32(path) == crcs[rel]:
            _CHECKED.add(key)
        else:
            problems.append(f"{rel} does not match its checksum in {MANIFEST}")
    return problems


def write_manifest(folder: Path, fields: dict) -> dict:
    """Record size, CRC-32 and SHA-256 of every file of a finished build, next to `fields`."""
    files = _files(folder)
    manifest = dict(fields,
                    files={p.relative_to(folder).as_posix(): file_digest(p) for p in files},
                    sizes={p.relative_to(folder).as_posix(): p.stat().st_size for p in files},
                    crc32={p.relative_to(folder).as_posix(): file_crc32(p) for p in files})
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


# ------------------------------------------------------------------ build folders and the swap

def _pid_alive(pid: int) -> bool | None:
    """True / False on POSIX; None where it cannot be told (Windows: signal 0 is not a probe there)."""
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _current(target: Path) -> str | None:
    """Folder name the dataset link points at (None if not a link)."""
    return os.readlink(target) if target.is_symlink() else None


def remove_stale(root: Path, name: str, now: float | None = None) -> list[Path]:
    """Remove leftovers of `name`'s earlier builds; return what was removed.

    Unfinished builds (no manifest) go once their process is gone, or after STALE_BUILD_S where that
    cannot be told; finished builds that the link no longer points to go RETIRED_GRACE_S after they
    were replaced, as do plain folders moved aside where there are no symlinks.
    """
    root = Path(root)
    now = time.time() if now is None else now
    current = _current(root / name)
    ours = re.compile(rf"^\.{re.escape(name)}\.(\d+)-[0-9a-f]+$")
    removed = []
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return removed
    link = re.compile(rf"^\.{re.escape(name)}\.link-(\d+)-[0-9a-f]+$")
    for p in entries:
        m = link.match(p.name)
        if m and p.is_symlink() and _pid_alive(int(m.group(1))) is False:  # a swap killed half-way
            p.unlink(missing_ok=True)
            removed.append(p)
            continue
        if p.name == current or p.is_symlink() or not p.is_dir():
            continue
        try:
            age = now - p.stat().st_mtime
        except FileNotFoundError:
            continue
        m = ours.match(p.name)
        if m:
            if (p / MANIFEST).is_file():
                stale = age > RETIRED_GRACE_S
            else:
                alive = _pid_alive(int(m.group(1)))
                stale = alive is False or age > STALE_BUILD_S
        elif p.name.startswith(f".{name}.old-"):
            stale = age > RETIRED_GRACE_S
        else:
            continue
        if stale:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _publish(root: Path, name: str, built: Path) -> None:
    """Point `<root>/<name>` at the finished folder `built` in one atomic rename."""
    target = root / name
    old = root / _current(target) if target.is_symlink() else None
    if old is None and target.exists():
        # a build published as a plain folder (no symlinks here): move it aside (readers may miss it meanwhile)
        old = root / f".{name}.old-{uuid.uuid4().hex[:8]}"
        target.rename(old)
    link = root / f".{name}.link-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        os.symlink(built.name, link, target_is_directory=True)  # relative: the root may move
    except (OSError, NotImplementedError):  # no symlinks here (Windows without the privilege)
        built.rename(target)
    else:
        os.replace(link, target)
    if old is not None and old.exists():
        os.utime(old)  # its grace period starts now; remove_stale deletes it later


def _check_existing(target: Path, wanted: dict) -> tuple[str, str]:
    """("ok" | "absent" | "other" | "damaged", why): the state of the build at `target`."""
    if not target.exists():
        return "absent", ""
    folder = target.resolve()  # one version for the whole check, even if a swap happens meanwhile
    try:
        manifest = read_manifest(folder)
    except FileNotFoundError:
        return "damaged", f"{MANIFEST} is missing (an unfinished build?)"
    except ValueError as e:
        return "damaged", str(e)
    if {k: manifest.get(k) for k in wanted} != json.loads(json.dumps(wanted)):
        return "other", ""
    problems = quick_check(folder, manifest)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        return "damaged", "; ".join(problems[:3]) + more
    return "ok", ""


def build_once(
    name: str,
    builder: Callable[[Path], None],
    *,
    params: dict,
    version: int = 1,
    root: Path | None = None,
    force: bool = False,
) -> Path:
    """Return `<root>/<name>`, calling `builder(tmp_folder)` first unless an identical, intact build exists.

    `params` (seed, sizes, ...) and `version` are recorded; a cached build made with other values is
    rebuilt rather than silently reused, and a damaged one (missing, resized or changed files, a
    broken manifest) is rebuilt with a warning that names the problem.
    """
    root = Path(root) if root is not None else data_root()
    target = root / name
    wanted = {"name": name, "version": version, "params": params}
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"the data folder {root} cannot be used ({e.strerror or e}); set UNIREP_DATA to a "
                         "writable folder") from None
    writable = os.access(root, os.W_OK | os.X_OK)
    if writable:
        remove_stale(root, name)
    if not force:
        state, why = _check_existing(target, wanted)
        if state == "ok":
            return target
        if state == "damaged":
            warnings.warn(f"dataset {target} is damaged: {why}; rebuilding it", stacklevel=3)
    if not writable:
        raise ValueError(f"dataset {name} must be built, but the data folder {root} is not writable; set "
                         "UNIREP_DATA to a writable folder")
    tmp = root / f".{name}.{os.getpid()}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        builder(tmp)
        write_manifest(tmp, wanted)
        _publish(root, name, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def repair(folder: Path, rebuild: Callable[[], Path]) -> tuple[Path, list[str]]:
    """Full check of a build (SHA-256 of every file); if anything differs, `rebuild()` it.

    Returns (folder, the files that were damaged); used by `python -m unirep_lite.data build`.
    """
    try:
        damaged = verify(folder)
    except (FileNotFoundError, ValueError) as e:
        damaged = [str(e)]
    if damaged:
        folder = rebuild()
    return folder, damaged


def build_modality(name: str, params_for: Callable[[bool], dict], builder_for: Callable[[dict], Callable[[Path], None]],
                   *, version: int, fast: bool = False, root: Path | None = None, force: bool = False,
                   separate_fast: bool = True) -> Path:
    """The `build()` shared by the modality modules: params from the FAST switch, then `build_once`.

    Fast and full builds live side by side (`<name>-fast` and `<name>`), so switching UNIREP_FAST
    never forces a rebuild; `separate_fast=False` is for datasets whose fast and full builds are equal.
    """
    params = params_for(fast)
    folder = name + ("-fast" if fast and separate_fast else "")
    return build_once(folder, builder_for(params), params=params, version=version, root=root, force=force)
