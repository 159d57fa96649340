"""Where the authors' released ImageNet-1K files live once downloaded: their keys, the cache folder,
the checksum record beside each file, and the check on every load.

`pretrained` fetches the files (and imports the checkpoint code to verify them); this module only
finds and checks them, so `checkpoint.create_model(..., pretrained=True)` can use it without a cycle.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .env import pretrained_folder
from .model import IN1K_RELEASES

CLI = "python -m unirep_lite.pretrained"
CHUNK = 1 << 20  # bytes read and hashed at a time


def release_key(variant) -> str:
    """'A', 'a' or 'unireplknet_a' -> 'a'; a ValueError for a variant whose weights are not fetched here."""
    key = variant.strip().lower().removeprefix("unireplknet_") if isinstance(variant, str) else None
    if key not in IN1K_RELEASES:
        raise ValueError(f"variant must be one of {', '.join(k.upper() for k in IN1K_RELEASES)} (the authors' "
                         f"ImageNet-1K weights fetched here), got {variant!r}")
    return key


def default_cache_dir() -> Path:
    """$UNIREP_PRETRAINED, else torch.hub's checkpoint folder."""
    return pretrained_folder() or Path(torch.hub.get_dir()) / "checkpoints"


def _folder(cache_dir) -> Path:
    return default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()


def file_path(variant, cache_dir=None) -> Path:
    """Where the variant's file is, or will be once downloaded."""
    return _folder(cache_dir) / IN1K_RELEASES[release_key(variant)].filename


def record_path(path: Path) -> Path:
    """The JSON beside a cached file: its SHA-256 and where it came from."""
    return path.with_name(path.name + ".json")


def hint(variant, cache_dir=None) -> str:
    """One line: how to get the variant's weights into the cache."""
    key = release_key(variant)
    option = "" if cache_dir is None else f" --cache-dir {cache_dir}"
    return (f"the authors' UniRepLKNet-{key.upper()} ImageNet-1K weights ({IN1K_RELEASES[key].megabytes} MB) are "
            f"not in {_folder(cache_dir)}: get them once with `{CLI} download {key.upper()}{option}` (needs a network)")


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def cached_file(variant, cache_dir=None) -> Path | None:
    """The variant's cached file, its SHA-256 checked against the record; None when it is not there.

    A ValueError when the file is there but differs from what was recorded when it was stored.
    """
    key = release_key(variant)
    path = file_path(key, cache_dir)
    if not path.is_file():
        return None
    again = f"delete it and run `{CLI} download {key.upper()}` again"
    try:
        recorded = json.loads(record_path(path).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{path} has no readable checksum record ({record_path(path).name}): it was not stored by "
                         f"`{CLI} download`; run that to check it") from None
    digest = sha256_of(path)
    if digest != recorded:
        raise ValueError(f"{path}: SHA-256 {digest[:16]}... differs from the {str(recorded)[:16]}... recorded when it "
                         f"was stored: the file was changed or damaged; {again}")
    return path


def require(variant, cache_dir=None) -> Path:
    """The variant's checked cached file; a FileNotFoundError saying how to get it when it is missing."""
    path = cached_file(variant, cache_dir)
    if path is None:
        raise FileNotFoundError(hint(variant, cache_dir))
    return path
