"""How big a run is: one value, decided once at the entry (a notebook's first cell, a command line)
and passed down to every function that sizes data, models or schedules.

Three sizes:
  "fast"  the CI size: small data and inputs, short schedules; every notebook in minutes on 2 cores.
  "cpu"   the default without a GPU: FAST's data and inputs, schedules `CPU_EPOCH_FACTOR` times longer,
          so the whole course fits in about an hour on 2 cores.
  "full"  the real run: full datasets and schedules (the default on a CUDA GPU).

    size = RunSize.parse("fast")
    size.small, size.key, size.epochs(5)       # True, "fast", 5
    describe_run("05", size, torch.device("cpu"))

Which size a process runs at is read from the environment and the hardware by `env.run_size()`,
nowhere else.
"""
from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass

SIZES = ("fast", "cpu", "full")
CPU_EPOCH_FACTOR = 3  # "cpu" runs train this many times the FAST schedule's epochs
LABELS = {"fast": "FAST", "cpu": "CPU-sized", "full": "full"}


@dataclass(frozen=True)
class RunSize:
    name: str  # "fast", "cpu" or "full"

    def __post_init__(self):
        if self.name not in SIZES:
            raise ValueError(f"run size must be one of {SIZES}, got {self.name!r}")

    @classmethod
    def parse(cls, value) -> "RunSize":
        """A RunSize from a RunSize or one of the names "fast", "cpu", "full" (any case)."""
        if isinstance(value, RunSize):
            return value
        if not isinstance(value, str):
            raise TypeError(f"run size must be a RunSize or one of {SIZES}, got {value!r}")
        return cls(value.strip().lower())

    @property
    def small(self) -> bool:
        """Small data and inputs: the FAST and the CPU-sized runs."""
        return self.name != "full"

    @property
    def key(self) -> str:
        """"fast" or "full": the key of the per-size tables (input sizes, dataset sizes)."""
        return "fast" if self.small else "full"

    @property
    def label(self) -> str:
        """How pages and logs name it: "FAST", "CPU-sized" or "full"."""
        return LABELS[self.name]

    def epochs(self, fast_epochs: int, full_epochs: int | None = None) -> int:
        """A schedule's epochs at this size: FAST's, `CPU_EPOCH_FACTOR` times FAST's, or the full run's."""
        if self.name == "full":
            return fast_epochs if full_epochs is None else full_epochs
        return fast_epochs * (CPU_EPOCH_FACTOR if self.name == "cpu" else 1)

    def __str__(self) -> str:
        return self.name


FAST, CPU, FULL = RunSize("fast"), RunSize("cpu"), RunSize("full")

# Wall-clock minutes per notebook on the reference machine, 2 CPU cores (AMD EPYC, no GPU):
# (the FAST run, as measured by executing the course in FAST mode on an idle machine;
#  the full run's trainings, as measured and reported in the notebook; None: not timed on a CPU).
MINUTES = {
    "01": (0.1, None),
    "02": (0.2, None),
    "03": (0.2, None),
    "04": (1.1, None),
    "05": (3.2, 46),
    "06": (1.0, 56),
    "07": (3.1, 115),  # full: 20 measured for one run of A, plus an estimate for five more (K = 3 / 13)
    "08": (0.7, 20),
    "09": (0.8, 200),
    "10": (4.9, None),
}
REFERENCE = "2 CPU cores"


def expected_minutes(notebook: str, size: RunSize) -> float | None:
    """Minutes notebook `notebook` ("05") takes at `size` on the reference machine (None: not timed)."""
    fast, full = MINUTES.get(str(notebook)[:2], (None, None))
    if size.name == "full":
        return full
    return fast and fast * (CPU_EPOCH_FACTOR if size.name == "cpu" else 1)


def describe_run(notebook: str | None, size: RunSize, device, *, binder: bool = False, out=None) -> None:
    """Print how this notebook will run: its size, the device, the minutes to expect, how to switch.

    Every notebook's first code cell calls it with the size and device it decided on.
    """
    import torch

    from . import __version__

    size, device = RunSize.parse(size), torch.device(device)
    where = device.type + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                           f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else "")

    def minutes(s: RunSize):
        m = expected_minutes(notebook, s)
        if m is None:
            return "not timed on a CPU"
        text = "under a minute" if m < 1 else f"about {m:.0f} min" if m < 90 else f"about {m / 60:.1f} hours"
        if s.name == "cpu" and m >= 1:  # CPU_EPOCH_FACTOR times FAST's epochs: at most that many times its time
            text = "up to " + text.removeprefix("about ")
        text += f" on {REFERENCE}"
        return text + (f"; far less on this {device.type}" if s.name == "full" and device.type != "cpu" else "")

    note = " (Binder runs the small course by default)" if binder and size.name == "fast" else ""
    others = "; ".join(f"{LABELS[k]} {minutes(RunSize(k))}" for k in SIZES if k != size.name)
    lines = [f"unirep_lite {__version__}: {size.label} run (size {size.name!r}) on {where}{note}.",
             f"Expected: {minutes(size)}. Other sizes: {others}.",
             "To switch: set SIZE = RunSize(\"fast\") (or \"cpu\", \"full\") in this cell and run it again, or "
             "start Jupyter with UNIREP_SIZE=...; UNIREP_DEVICE=cpu|cuda|mps picks the device."]
    # wrapped for a terminal, a notebook and the book's column alike
    print("\n".join(textwrap.fill(line, 88, subsequent_indent="  ", break_on_hyphens=False) for line in lines),
          file=out or sys.stdout)
