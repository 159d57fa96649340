"""The course's main job: execute every notebook in order (`python -m unirep_lite.course run`).

Executed copies go to `build/notebooks/` so the notebooks in git stay free of outputs. The default is
the real run; `UNIREP_FAST=1` (or `--fast`) runs the small CI-sized version of every notebook (see `env.run_size()`).

This is the ONE place notebooks are executed (the book build and the tests call `execute`), and every
execution watches for a stalled kernel: a cell that has shown no output while the kernel used no CPU
for `STALL_SECONDS` is a kernel that finished (or never started) while the client still waits for it,
the hang of ipykernel 7 with notebook clients. That notebook is run once more with a fresh kernel, and
a second stall fails with a message that says so, instead of waiting forever.

`describe_run("05")` is what each notebook's first cell prints: the run size (FAST, CPU-sized, full), the device,
the expected minutes, and how to switch.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "notebooks"

# A cell with no output and < 1% of a core for this long means the kernel is idle while we wait: stalled.
STALL_SECONDS = 180
# Per-cell limit of a FAST run: the longest FAST cell (notebook 10's reach experiment, 15 trainings in
# one cell) takes about 4.5 minutes on 2 CPU cores; a full run has no per-cell limit (hours on a CPU),
# only the stall watch.
FAST_CELL_TIMEOUT = 1200

# Wall-clock minutes per notebook on the reference machine, 2 CPU cores (AMD EPYC, no GPU):
# (the FAST run, as measured by `python -m unirep_lite.course run --fast` on an idle machine;
#  the full run's trainings, as measured and reported in the notebook; None: not timed on a CPU).
MINUTES = {
    "01": (0.1, None), "02": (0.2, None), "03": (0.2, None), "04": (1.3, None), "05": (2.7, 46),
    "06": (1.3, 56), "07": (1.0, 20), "08": (0.4, 20), "09": (0.4, 200), "10": (5.7, None),
}
REFERENCE = "2 CPU cores"
# Set for every kernel this module starts (unless already set): plotly figures are saved both for
# JupyterLab (mimetype) and as self-contained HTML (plotly.js inlined), which the static book shows.
KERNEL_ENV = {"PLOTLY_RENDERER": "plotly_mimetype+notebook"}


class KernelStalled(RuntimeError):
    """The kernel went quiet (no output, no CPU) while a cell was still waiting for its reply."""


# ---------------------------------------------------------------------------------------------------
# What a notebook's first cell prints


SIZE_NAMES = {"fast": "FAST", "cpu": "CPU-sized", "full": "full"}


def describe_run(notebook: str | None = None, *, out=None) -> None:
    """Print how this notebook will run: its size (FAST, CPU-sized or full; `env.run_size()`), the device,
    the minutes to expect, and how to switch.

    `notebook` is its number ("05"); every notebook's first code cell calls this.
    """
    import torch

    from . import __version__
    from .env import CPU_EPOCH_FACTOR, default_device, run_size

    size, device = run_size(), default_device()
    where = device.type + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                           f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else "")
    fast_min, full_min = MINUTES.get(str(notebook)[:2], (None, None))

    def minutes(m, bound=False):
        if m is None:
            return "not timed on a CPU"
        text = "under a minute" if m < 1 else f"about {m:.0f} min" if m < 90 else f"about {m / 60:.1f} hours"
        return ("up to " + text.removeprefix("about ") if bound and m >= 1 else text) + f" on {REFERENCE}"

    expected = {"fast": minutes(fast_min),
                # the CPU size trains CPU_EPOCH_FACTOR times FAST's epochs: at most that many times FAST's time
                "cpu": minutes(fast_min and fast_min * CPU_EPOCH_FACTOR, bound=True),
                "full": minutes(full_min) + ("" if device.type == "cpu" else f"; far less on this {device.type}")}
    binder = " (Binder runs the small course by default)" if size == "fast" and os.environ.get("UNIREP_BINDER") else ""
    others = "; ".join(f"{SIZE_NAMES[k]} {v}" for k, v in expected.items() if k != size)
    lines = [f"unirep_lite {__version__}: {SIZE_NAMES[size]} run (size {size!r}) on {where}{binder}.",
             f"Expected: {expected[size]}. Other sizes: {others}.",
             f"To switch: run `import os; os.environ[\"UNIREP_SIZE\"] = \"fast\"` (or \"cpu\", \"full\") now, before the "
             f"next cell, or start Jupyter with UNIREP_SIZE=...; UNIREP_DEVICE=cpu|cuda|mps picks the device."]
    # wrapped for a terminal, a notebook and the book's column alike
    print("\n".join(textwrap.fill(line, 88, subsequent_indent="  ", break_on_hyphens=False) for line in lines),
          file=out or sys.stdout)


# ---------------------------------------------------------------------------------------------------
# Stall watch


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) used so far by process `pid` and its children; None if it is gone."""
    import psutil

    try:
        proc = psutil.Process(pid)
        total = sum(proc.cpu_times()[:4])  # user, system, children_user, children_system
        for child in proc.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return None


class StallWatch:
    """Tells when a kernel process has shown no activity and used almost no CPU for `seconds`.

    Call `activity()` whenever the kernel shows a sign of life (an output); `check()` now and then. A
    cell that computes uses CPU, so only a kernel that waits for nothing (or a cell that sleeps) trips it.
    """

    def __init__(self, pid: int | None, seconds: float = STALL_SECONDS):
        self.pid, self.seconds = pid, seconds
        self.activity()

    def activity(self) -> None:
        self.since = time.monotonic()
        self.cpu = cpu_seconds(self.pid) if self.pid else None

    def check(self) -> bool:
        """True when the kernel has been quiet for `seconds`: no output and under 1% of a core."""
        now, cpu = time.monotonic(), cpu_seconds(self.pid) if self.pid else None
        quiet = now - self.since
        if cpu is not None and self.cpu is not None and cpu - self.cpu > 0.5 + 0.01 * quiet:
            self.since, self.cpu = now, cpu  # it computes: not stalled
            return False
        return quiet >= self.seconds


def _client_class():
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    class GuardedClient(NotebookClient):
        """nbclient's client plus the stall watch: a stalled cell raises KernelStalled."""

        stall_seconds: float = STALL_SECONDS

        def process_message(self, msg, cell, cell_index):
            if getattr(self, "_watch", None) is not None:
                self._watch.activity()
            return super().process_message(msg, cell, cell_index)

        async def _watch_stall(self, cell_index: int) -> None:
            pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
            self._watch = StallWatch(pid, self.stall_seconds)
            while True:
                await asyncio.sleep(min(5.0, self.stall_seconds / 4))
                if self._watch.check():
                    self._stalled = cell_index
                    task = getattr(self, "task_poll_for_reply", None)
                    if task is not None:
                        task.cancel()  # nbclient turns this into DeadKernelError; we say what happened
                    return

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            self._stalled = None
            watcher = asyncio.ensure_future(self._watch_stall(cell_index))
            try:
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            except (DeadKernelError, asyncio.CancelledError):
                if self._stalled is None:
                    raise
                raise KernelStalled(
                    f"the kernel stalled in cell {cell_index}: no output and no CPU use for "
                    f"{self.stall_seconds:.0f} s while the cell was still running (a hung kernel, e.g. "
                    f"ipykernel 7 with notebook clients; constraints.txt pins ipykernel 6)\n"
                    f"cell source:\n{cell.source[:500]}") from None
            finally:
                watcher.cancel()
                self._watch = None

    return GuardedClient


def execute(path: Path, out: Path | None = None, *, fast: bool | None = None, timeout: float | None = None,
            stall_seconds: float = STALL_SECONDS, env: dict | None = None, kernel_name: str = "python3",
            cwd: Path | None = None, retry: bool = True, log=print):
    """Execute notebook `path` top to bottom in a fresh kernel and return (executed notebook, seconds).

    `fast` sets UNIREP_FAST for the kernel (None: as in this process); `timeout` is per cell (default:
    FAST_CELL_TIMEOUT in FAST mode, none in a full run). The executed copy is written to `out` (a folder
    or a .ipynb path) when given. A cell that raises raises nbclient's CellExecutionError (it shows the
    cell and its traceback); a stalled kernel is retried once with a fresh kernel (`retry`), then
    raises KernelStalled.
    """
    import nbformat

    path = Path(path)
    env = dict(os.environ if env is None else env)
    if fast is not None:
        env["UNIREP_FAST"] = "1" if fast else "0"
    for key, value in KERNEL_ENV.items():
        env.setdefault(key, value)
    size = _size(env)
    is_fast = size == "fast"
    if timeout is None and is_fast:
        timeout = FAST_CELL_TIMEOUT
    client_class = _client_class()
    for attempt in (1, 2):
        nb = nbformat.read(path, as_version=4)
        client = client_class(nb, timeout=timeout, kernel_name=kernel_name,
                              resources={"metadata": {"path": str(cwd or path.parent)}})
        client.stall_seconds = stall_seconds
        start = time.perf_counter()
        try:
            client.execute(env=env)
            break
        except KernelStalled as err:
            if attempt == 2 or not retry:
                raise KernelStalled(f"{path.name}: {err}" + ("\n(it stalled twice; a retry with a fresh kernel "
                                                           "stalled again)" if retry else "")) from None
            log(f"    {path.name}: {str(err).splitlines()[0]}; retrying once with a fresh kernel", flush=True)
    seconds = time.perf_counter() - start
    nb.metadata["unirep_lite"] = {"fast": is_fast, "size": size, "seconds": round(seconds, 1), "device": _device(env),
                                  "executed": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if out is not None:
        out = Path(out)
        target = out if out.suffix == ".ipynb" else out / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    return nb, seconds


def _size(env: dict) -> str:
    """env.run_size() as the kernel will see it with environment `env`."""
    from . import env as envmod

    saved = {k: os.environ.get(k) for k in ("UNIREP_SIZE", "UNIREP_FAST", "UNIREP_DEVICE")}
    try:
        for k in saved:
            if env.get(k) is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = env[k]
        return envmod.run_size()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _device(env: dict) -> str:
    if env.get("UNIREP_DEVICE"):
        return env["UNIREP_DEVICE"]
    from .env import default_device

    return default_device().type


def run_record(path: Path) -> dict:
    """What `execute` noted in an executed notebook: {"fast", "seconds", "device", "executed"} ({} if none)."""
    import nbformat

    return dict(nbformat.read(path, as_version=4).metadata.get("unirep_lite", {}))


# The executed copies are pages to read (`make course` builds the book from them), so they are made
# the way the book build makes its own: explorers as their kernel-free plotly version
# (unirep_lite.explorers) and no progress bars (unirep_lite.env.progress_bar).
PAGE_ENV = {"UNIREP_BOOK": "1", "TQDM_DISABLE": "1"}


def notebooks() -> list[Path]:
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {NOTEBOOKS}; is this a source checkout?")
    return found


def run(paths: list[Path], out: Path = EXECUTED, *, fast: bool | None = None, env: dict | None = None,
        log=print) -> dict[str, float]:
    """Execute `paths` in order into `out`; returns {notebook name: seconds}. Stops at the first failure."""
    mode = "FAST" if fast else SIZE_NAMES[_size({**os.environ, **(env or {})})]
    times = {}
    for i, path in enumerate(paths, 1):
        log(f"[{i}/{len(paths)}] {path.name} ({mode} run) ...", flush=True)
        _, times[path.name] = execute(path, out, fast=fast, env=env, log=log)
        log(f"    done in {times[path.name]:.0f} s -> {Path(out) / path.name}", flush=True)
    return times


def plan(paths: list[Path], size: str, device: str) -> str:
    """What a run of `paths` at `size` will do here, with minutes estimated from the measured `MINUTES`:
    printed before every course run, so that nobody starts a multi-hour job by surprise."""
    from .env import CPU_EPOCH_FACTOR

    lines = [f"Plan: {len(paths)} notebooks, {SIZE_NAMES[size]} run (size {size!r}) on {device}."]
    total, known = 0.0, True
    for path in paths:
        fast_min, full_min = MINUTES.get(path.name[:2], (None, None))
        m = {"fast": fast_min, "cpu": fast_min and fast_min * CPU_EPOCH_FACTOR, "full": full_min}[size]
        if size == "full" and device != "cpu":
            m = None  # measured on a CPU only: a GPU takes a fraction of it
        known = known and m is not None
        total += m or 0.0
        lines.append(f"  {path.name:38} " + (f"~{m:5.1f} min" if m is not None else "   not timed here"))
    where = f"on {REFERENCE}" if device == "cpu" else "(CPU timings; a GPU is much faster)"
    lines.append(f"  estimated total: {'~' if known else 'at least '}{total:.0f} min {where}")
    if size == "cpu":
        lines.append("  (the CPU-sized course: FAST data with longer schedules; the full run is written for a GPU:"
                     " `make course-full` or UNIREP_SIZE=full asks for it here, hours on a CPU)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unirep_lite.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "list", "plan"])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--fast", action="store_true", help="small CI-sized run (sets UNIREP_FAST=1)")
    size.add_argument("--full", action="store_true", help="the full run, also without a GPU (sets UNIREP_SIZE=full)")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name contains one of these")
    parser.add_argument("--out", type=Path, default=EXECUTED, help=f"folder for executed copies (default {EXECUTED})")
    args = parser.parse_args(argv)
    if args.fast:
        os.environ["UNIREP_FAST"] = "1"
    if args.full:
        os.environ["UNIREP_SIZE"] = "full"
    selected = [p for p in notebooks() if not args.only or any(s in p.name for s in args.only)]
    if args.command == "list":
        print("\n".join(p.name for p in selected))
        return 0
    print(plan(selected, _size(dict(os.environ)), _device(dict(os.environ))), flush=True)
    if args.command == "plan":
        return 0
    start = time.perf_counter()
    try:
        run(selected, args.out, env={**os.environ, **PAGE_ENV})
    except Exception as err:  # show the failing cell's error (or the stall), not nbclient's internals
        print(f"\nfailed: {err}", file=sys.stderr)
        return 1
    print(f"all {len(selected)} notebooks executed in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
