"""Build, list and verify the offline datasets.

    python -m unirep_lite.data build [NAME ...] [--fast] [--force]   (default: all of them)
    python -m unirep_lite.data list                                   (names, folders, built or not)
    python -m unirep_lite.data verify [NAME ...]                      (checksums against MANIFEST.json)

--fast builds the small CI variants (also chosen by UNIREP_FAST=1); the cache folder is
`unirep_lite.data.data_root()` ($UNIREP_DATA to move it).
"""
from __future__ import annotations

import sys

from unirep_lite import checks, env
from unirep_lite.data import audio, cache, images, points, video, weather


def registry() -> dict:
    """Dataset name -> its module (with build() and load()), in the course's order; each module names
    itself (`NAME`), and the recipes' registry points at the same modules."""
    return {m.NAME: m for m in (images, audio, video, points, weather)}


def _pick(names: list[str], available: dict) -> list[str]:
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"unknown dataset(s) {unknown}; available: {sorted(available)}")
    return names or list(available)


def main(argv=None) -> int:
    parser = checks.ArgumentParser(prog="python -m unirep_lite.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build offline datasets (all by default)")
    b.add_argument("names", nargs="*")
    b.add_argument("--fast", action="store_true", default=None, help="small CI variants")
    b.add_argument("--force", action="store_true", help="rebuild even if a matching build exists")
    sub.add_parser("list", help="list datasets and where they are")
    v = sub.add_parser("verify", help="check built datasets against their manifests")
    v.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    try:
        if args.command == "build" and args.fast is None:  # not asked: the run size of this environment
            args.fast = env.run_size().small
        return _run(args)
    except ValueError as e:  # a bad environment value or an unusable data folder: one line, no traceback
        raise SystemExit(f"{parser.prog}: error: {e}") from None


def _run(args) -> int:

    available = registry()
    root = cache.data_root()
    if args.command == "build":
        for name in _pick(args.names, available):
            build = available[name].build
            folder = build(fast=args.fast, force=args.force)
            if not args.force:  # a load checks sizes and CRCs; here every file's SHA-256 too
                folder, damaged = cache.repair(folder, lambda: build(fast=args.fast, force=True))
                if damaged:
                    print(f"{name}: rebuilt, {len(damaged)} file(s) did not match {cache.MANIFEST}: {damaged[:5]}")
            print(f"{name}: {folder}  sha256 {cache.dataset_checksum(folder)[:16]}")
        return 0
    if args.command == "list":
        print(f"data root: {root}")
        for name in available:
            builds = [b.name for b in _builds(root, name)]
            print(f"  {name:8s} {', '.join(builds) if builds else 'not built'}")
        return 0
    bad = 0
    for name in _pick(args.names, available):
        builds = _builds(root, name)
        if not builds:
            print(f"{name}: not built")
        for folder in builds:
            try:
                broken = cache.verify(folder)
            except ValueError as e:  # a broken manifest
                broken = [str(e)]
            bad += bool(broken)
            print(f"{folder.name}: " + (f"{len(broken)} file(s) changed: {broken[:5]}" if broken else "ok"))
    return 1 if bad else 0


def _builds(root, name: str) -> list:
    """Finished builds of one dataset: `<name>` and its small variant `<name>-fast`, where present."""
    return [root / n for n in (name, f"{name}-fast") if (root / n / cache.MANIFEST).is_file()]


if __name__ == "__main__":
    sys.exit(main())
