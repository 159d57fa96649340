"""The course's main job: execute every notebook in order (`python -m unirep_lite.course run`).

Executed copies go to `build/notebooks/` so the notebooks in git stay free of outputs. The default is
the real run; `UNIREP_FAST=1` (or `--fast`) runs the small CI-sized version of every notebook.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "notebooks"


def notebooks() -> list[Path]:
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {NOTEBOOKS}; is this a source checkout?")
    return found


def execute(path: Path, out_dir: Path, timeout: int | None = None) -> float:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unirep_lite.course", description=__doc__)
    parser.add_argument("command", choices=["run", "list"])
    parser.add_argument("--fast", action="store_true", help="small CI-sized run (sets UNIREP_FAST=1)")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name contains one of these")
    args = parser.parse_args(argv)
    if args.fast:
        os.environ["UNIREP_FAST"] = "1"
    selected = [p for p in notebooks() if not args.only or any(s in p.name for s in args.only)]
    if args.command == "list":
        print("\n".join(p.name for p in selected))
        return 0
    mode = "FAST" if os.environ.get("UNIREP_FAST") == "1" else "full"
    for i, path in enumerate(selected, 1):
        print(f"[{i}/{len(selected)}] {path.name} ({mode} run) ...", flush=True)
        try:
            seconds = execute(path, EXECUTED)
        except Exception as err:  # show the failing cell's error, not nbclient's internals
            print(f"\n{path.name} failed:\n{err}", file=sys.stderr)
            return 1
        print(f"    done in {seconds:.0f} s -> {EXECUTED / path.name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
