"""Deprecated: the book builder is repository tooling now, `python -m tools.book` in a checkout.

`python -m unirep_lite.book ...` forwards there for one release.
"""
from __future__ import annotations

from .course import forward


def main(argv: list[str] | None = None) -> int:
    return forward("unirep_lite.book", "tools.book", argv)


if __name__ == "__main__":
    raise SystemExit(main())
