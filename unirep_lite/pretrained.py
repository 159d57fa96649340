"""The authors' ImageNet-1K weights of UniRepLKNet A, F, P and N: fetched once on request, checked, cached.

    python -m unirep_lite.pretrained download A     # 18.9 MB from Hugging Face, checked, then cached
    python -m unirep_lite.pretrained list           # the four files, their sizes, which are cached
    python -m unirep_lite.pretrained where          # the cache folder

    model = unirep_lite.create_model("unireplknet_a", pretrained=True)   # from the cache, no network
    model = timm.create_model("unireplknet_a", pretrained=True)          # the same through timm

Nothing is downloaded unless the reader asks (`download`); building a model only looks in the cache.
A download is written to a hidden part file beside its target and renamed into place only once it is
whole and checked, so an interrupted one leaves nothing that looks complete (a rerun starts over).
Checked means: its SHA-256 equals the published one where that is known (`model.IN1K_RELEASES`), it
reads with torch.load(weights_only=True) (no code runs from the file) and it loads strictly into its
variant. Its SHA-256 is then recorded in a small JSON file beside it and compared on every later load,
so a file changed afterwards is refused.

The cache folder is an argument (`cache_dir`) everywhere; left out, it is $UNIREP_PRETRAINED, else
torch.hub's checkpoint folder (~/.cache/torch/hub/checkpoints), where torch and timm keep weights.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import torch

from . import checks
from .checkpoint import check_state_dict, load_checkpoint, unwrap_state_dict
from .env import progress_bar
from .model import IN1K_RELEASES, RELEASE_URL, Release, UniRepLKNet, create_model
from .releases import (CHUNK, CLI, _folder, cached_file, default_cache_dir, file_path, hint,  # noqa: F401
                       record_path, release_key, require, sha256_of)


def load_if_cached(variant, cache_dir=None, **kwargs) -> UniRepLKNet | None:
    """The variant with the authors' weights if they are cached, else None (`hint` then says how to get
    them). `kwargs` go to `create_model` (e.g. deploy=True: the training-structure file is merged)."""
    path = cached_file(variant, cache_dir)
    if path is None:
        return None
    return load_checkpoint(create_model(f"unireplknet_{release_key(variant)}", **kwargs), path)


# ----------------------------------------------------------------------------- downloading

def download(variant, cache_dir=None, url: str | None = None, force: bool = False, progress: bool = True,
             timeout: float = 60.0) -> Path:
    """The variant's file in the cache: there already (checked, no request), else fetched and checked.

    `url` replaces the Hugging Face address (a mirror: the published SHA-256 still applies); `force`
    fetches again even over a cached file. A file found in the folder without a record (copied there
    by hand) is checked like a download and recorded. Errors leave the cache as it was.
    """
    key = release_key(variant)
    release = IN1K_RELEASES[key]
    checks.boolean("force", force)
    checks.number("timeout", timeout, above=0)
    url = check_url(url or RELEASE_URL + release.filename)
    folder = check_folder(_folder(cache_dir))
    path = folder / release.filename
    if path.is_file() and not force:
        if record_path(path).is_file():
            try:
                return cached_file(key, folder)
            except ValueError as e:
                raise ValueError(f"{e} (or pass force=True / --force)") from None
        _store(path, key, release, sha256_of(path), url=f"file placed in {folder}")
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cache folder {folder} cannot be made ({e.strerror})") from None
    _remove_stale_parts(path)
    part = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        digest = _fetch(url, part, progress, timeout, label=release.filename)
        _store(part, key, release, digest, url, final=path)
    finally:
        part.unlink(missing_ok=True)
    return path


def _fetch(url: str, part: Path, progress: bool, timeout: float, label: str) -> str:
    """Stream `url` into `part`; its SHA-256. A ConnectionError when it fails or stops short."""
    h, got, total = hashlib.sha256(), 0, None
    again = "nothing was stored; run the command again"
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "unirep_lite"})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as f:
            length = response.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
            bar = progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                               disable=not progress, leave=False, file=sys.stderr)
            with bar:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    except (OSError, http.client.HTTPException) as e:  # URLError and HTTPError are OSErrors
        reason = e.reason if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError) else e
        raise ConnectionError(f"downloading {url} failed after {got} bytes ({reason}); {again}") from e
    if total is not None and got != total:
        raise ConnectionError(f"downloading {url} stopped after {got} of {total} bytes; {again}")
    return h.hexdigest()


def _store(source: Path, key: str, release: Release, digest: str, url: str, final: Path | None = None) -> None:
    """Check `source` (published SHA-256, weights only, strict load into its variant), write its
    record, then move it to `final` (None: it stays where it is)."""
    target = final or source
    refused = "nothing was stored" if final is not None else "not recorded; delete it"
    if release.sha256 is not None and digest != release.sha256:
        raise ValueError(f"{url}: SHA-256 {digest[:16]}... is not the published {release.sha256[:16]}... of "
                         f"{release.filename}: not the authors' file; {refused}")
    name = f"unireplknet_{key}"
    try:
        sd = unwrap_state_dict(torch.load(source, map_location="cpu", weights_only=True))
        model = create_model(name)
        model.load_state_dict(check_state_dict(model, sd, strict=True), strict=True)
    except Exception as e:  # not a torch file, code in the pickle, another structure
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{url} is not weights that load strictly into {name} ({detail}); {refused}") from e
    record = {"file": release.filename, "variant": key.upper(), "url": url, "sha256": digest,
              "bytes": source.stat().st_size, "published_sha256": release.sha256 is not None,
              "checked": f"torch.load(weights_only=True), strict load into {name}",
              "stored": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    tmp = target.with_name(f".{target.name}.json.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, record_path(target))
    finally:
        tmp.unlink(missing_ok=True)
    if final is not None:
        os.replace(source, final)


def _remove_stale_parts(path: Path) -> None:
    """Part files of this download left by processes that are gone (killed mid-download)."""
    for part in path.parent.glob(f".{path.name}.part-*"):
        pid = part.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            part.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def check_url(url) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must be an http:// or https:// address, got {url!r}")
    return url


def check_folder(folder: Path) -> Path:
    """`folder` if it is, or can be made, a writable folder; a ValueError saying why not otherwise."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"cache folder {folder} is a file, not a folder")
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cache folder {folder} cannot be written (no write permission in {existing})")
    return folder


# ----------------------------------------------------------------------------- command line

def _variant_arg(text: str) -> str:
    try:
        return release_key(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _status(key: str, cache_dir) -> str:
    try:
        return "cached" if cached_file(key, cache_dir) else "not cached"
    except ValueError:
        return "REFUSED (checksum differs or record missing)"


def main(argv=None) -> int:
    parser = checks.ArgumentParser(prog=CLI, description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", type=Path, default=None,
                        help="the cache folder (default: $UNIREP_PRETRAINED, else torch.hub's checkpoints folder)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{download,list,where}")
    get = sub.add_parser("download", parents=[common], help="fetch, check and cache the weights of variants")
    get.add_argument("variants", nargs="+", type=_variant_arg, metavar="VARIANT",
                     help=f"{', '.join(k.upper() for k in IN1K_RELEASES)}")
    get.add_argument("--url", help="fetch from this address instead (one variant; a mirror of the same file)")
    get.add_argument("--force", action="store_true", help="fetch again even if the file is cached")
    get.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("list", parents=[common], help="the weights fetched here, their sizes and which are cached")
    sub.add_parser("where", parents=[common], help="print the cache folder")
    args = parser.parse_args(argv)

    folder = _folder(args.cache_dir)  # $UNIREP_PRETRAINED is read here, once
    if folder.exists() and not folder.is_dir():
        parser.exit(1, f"{CLI}: error: cache folder {folder} is a file, not a folder\n")
    if args.command == "where":
        print(folder)
        return 0
    if args.command == "list":
        for key, r in IN1K_RELEASES.items():
            print(f"{key.upper()}  {r.megabytes:5.1f} MB  {_status(key, args.cache_dir):10}  {r.filename}")
        print(f"cache folder: {folder}")
        return 0
    if args.url is not None and len(args.variants) != 1:
        parser.error("--url fetches one file: name one variant")
    try:
        if args.url is not None:
            check_url(args.url)
        check_folder(folder)
        for key in args.variants:
            was = None if args.force else _cached_quietly(key, folder)
            path = download(key, folder, url=args.url, force=args.force, progress=not args.quiet)
            how = ("cached already" if was else "stored") + (", SHA-256 checked" if was else
                                                             ", checked: weights only, loads strictly")
            print(f"{key.upper()}: {path} ({how})")
    except (OSError, ValueError) as e:
        parser.exit(1, f"{CLI}: error: {' '.join(str(e).split())}\n")
    return 0


def _cached_quietly(key: str, folder: Path) -> Path | None:
    try:
        return cached_file(key, folder)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
