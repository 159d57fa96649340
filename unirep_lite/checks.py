"""Argument checks at the boundary, with one message style: "`name` must be ..., got ...".

Every public constructor and config of the library checks its values with these when it is created,
so a mistake is a ValueError or TypeError that names the argument, not an error deep inside torch.
"""
from __future__ import annotations

import argparse
import math
import numbers
from typing import Sequence


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int in [minimum, maximum]; TypeError for a non-integer (bools and floats too)."""
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (f">= {minimum}" if maximum is None else f"<= {maximum}" if minimum is None
                  else f"in [{minimum}, {maximum}]")
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    return value


def positive_int(name: str, value) -> int:
    return integer(name, value, minimum=1)


def number(name: str, value, minimum: float | None = None, maximum: float | None = None,
           below: float | None = None, above: float | None = None) -> float:
    """`value` as a finite float in [minimum, maximum] (or < below, > above); TypeError for a non-number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    ok = math.isfinite(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum) \
        and (below is None or value < below) and (above is None or value > above)
    if not ok:
        parts = [p for p in (minimum is not None and f">= {minimum}", above is not None and f"> {above}",
                             maximum is not None and f"<= {maximum}", below is not None and f"< {below}") if p]
        raise ValueError(f"{name} must be a finite number{' ' + ' and '.join(parts) if parts else ''}, got {value!r}")
    return value


def odd_int(name: str, value) -> int:
    """A kernel size: a positive odd integer."""
    value = integer(name, value, minimum=1)
    if value % 2 == 0:
        raise ValueError(f"{name} must be a positive odd integer, got {value!r}")
    return value


def probability(name: str, value) -> float:
    """A drop rate: a number in [0, 1) (1 would drop everything)."""
    return number(name, value, minimum=0.0, below=1.0)


def boolean(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def integers(name: str, value, length: int | None = None, minimum: int | None = None) -> tuple[int, ...]:
    """A tuple or list of integers >= minimum, `length` of them when given."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple or list of integers, got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must be {length} integers, got {len(value)}: {value!r}")
    return tuple(integer(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(value))


def one_of(name: str, value, choices: Sequence):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def size_2d(name: str, value) -> tuple[int, int]:
    """An image size: one positive integer (square) or a pair of them."""
    pair = (value, value) if is_int(value) else tuple(value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(is_int(v) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line on stderr ("prog: error: ... (see --help)"), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
