"""Deprecated: the course runner is repository tooling now, `python -m tools.course` in a checkout.

`python -m unirep_lite.course ...` (and `python -m unirep_lite.book ...`) forward there for one release.
`describe_run` moved to `unirep_lite.runsize.describe_run(notebook, size, device)`.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path


def describe_run(notebook: str | None = None, *, out=None) -> None:
    """Deprecated: `unirep_lite.runsize.describe_run(notebook, size, device)` with the size and device
    this process runs at (`unirep_lite.env`). Not a warning: the notebooks' first cells still call it."""
    from . import env, runsize

    runsize.describe_run(notebook, env.run_size(), env.default_device(), binder=env.on_binder(), out=out)


def forward(old: str, new: str, argv: list[str] | None = None) -> int:
    """Run `python -m <new>` (tools/ of the source checkout this package is installed from) for `old`."""
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / "tools" / "__init__.py").is_file():
        print(f"python -m {old}: needs a source checkout of unirep_lite; run `python -m {new}` from its root",
              file=sys.stderr)
        return 2
    print(f"python -m {old} is deprecated: run `python -m {new}` from the repository root", file=sys.stderr)
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    return importlib.import_module(new).main(argv)


def main(argv: list[str] | None = None) -> int:
    return forward("unirep_lite.course", "tools.course", argv)


if __name__ == "__main__":
    raise SystemExit(main())
