"""The course's main job: execute every notebook in order (`python -m tools.course run`).

Executed copies go to `build/notebooks/` so the notebooks in git stay free of outputs. The size follows
`unirep_lite.env.run_size()` (the hardware, or UNIREP_SIZE / UNIREP_FAST); `--fast` runs the small CI
version of every notebook, `--full` the real run anywhere.

This is the ONE place notebooks are executed (the book build, `pytest notebooks` and the install tests
call `execute`), and every execution watches for a stalled kernel: a cell that has shown no output
while the kernel used no CPU for `STALL_SECONDS` is a kernel that finished (or never started) while
the client still waits for it, the hang of ipykernel 7 with notebook clients. That notebook is run
once more with a fresh kernel, and a second stall fails with a message that says so, instead of
waiting forever.

Run from the repository root (tools/ is beside the library, not in the wheel).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Mapping

from unirep_lite import checks
from unirep_lite import env as envmod
from unirep_lite.paths import check_output_path
from unirep_lite.runsize import REFERENCE, RunSize, expected_minutes

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "notebooks"
# What `pytest notebooks` executes (FAST, as pages): tests/test_book.py builds the book from these, so
# a `make test` executes every notebook once, and `make course`'s copies in EXECUTED are left alone.
TESTED = ROOT / "build" / "test-notebooks"

# A cell with no output and < 1% of a core for this long means the kernel is idle while we wait: stalled.
STALL_SECONDS = 180
# Per-cell limit of a FAST run: the longest FAST cell (notebook 10's reach experiment, 15 trainings in
# one cell) takes about 4.5 minutes on 2 CPU cores; a full run has no per-cell limit (hours on a CPU),
# only the stall watch.
FAST_CELL_TIMEOUT = 1200
# Set for every kernel this module starts (unless already set): plotly figures are saved both for
# JupyterLab (mimetype) and as self-contained HTML (plotly.js inlined), which the static book shows.
KERNEL_ENV = {"PLOTLY_RENDERER": "plotly_mimetype+notebook"}


class KernelStalled(RuntimeError):
    """The kernel went quiet (no output, no CPU) while a cell was still waiting for its reply."""


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


def execute(path: Path, out: Path | None = None, *, size: RunSize | str | None = None,
            timeout: float | None = None, stall_seconds: float = STALL_SECONDS, env: Mapping[str, str] | None = None,
            kernel_name: str = "python3", cwd: Path | None = None, retry: bool = True, log=print):
    """Execute notebook `path` top to bottom in a fresh kernel and return (executed notebook, seconds).

    The kernel gets environment `env` (default: this process's); `size` sets its UNIREP_SIZE. `timeout`
    is per cell (default: FAST_CELL_TIMEOUT in a FAST run, none otherwise). The executed copy is written
    to `out` (a folder or a .ipynb path) when given, with the run's size, device and seconds in its
    metadata (`run_record`). A cell that raises raises nbclient's CellExecutionError (it shows the cell
    and its traceback); a stalled kernel is retried once with a fresh kernel (`retry`), then raises
    KernelStalled.
    """
    import nbformat

    path = Path(path)
    env = {**KERNEL_ENV, **(os.environ if env is None else env)}
    if size is not None:
        env["UNIREP_SIZE"] = RunSize.parse(size).name
    run_size, device = envmod.run_size(env), envmod.default_device(env)  # as the kernel will see them
    if timeout is None and run_size.name == "fast":
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
    nb.metadata["unirep_lite"] = {"fast": run_size.name == "fast", "size": run_size.name, "seconds": round(seconds, 1),
                                  "device": device.type, "executed": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if out is not None:
        out = Path(out)
        target = out if out.suffix == ".ipynb" else out / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    return nb, seconds


def run_record(path: Path) -> dict:
    """What `execute` noted in an executed notebook: {"fast", "size", "seconds", "device", "executed"} ({} if none)."""
    import nbformat

    return dict(nbformat.read(path, as_version=4).metadata.get("unirep_lite", {}))


# The executed copies are pages to read (`make course` builds the book from them), so they are made
# the way the book build makes its own: explorers as their kernel-free plotly version
# (unirep_lite.explorers) and no progress bars (unirep_lite.env.progress_bar).
PAGE_ENV = {"UNIREP_BOOK": "1", "TQDM_DISABLE": "1"}


def notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The numbered notebooks (NN_name.ipynb) in `folder`, in order."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def run(paths: list[Path], out: Path = EXECUTED, *, env: Mapping[str, str] | None = None,
        log=print) -> dict[str, float]:
    """Execute `paths` in order into `out`; returns {notebook name: seconds}. Stops at the first failure."""
    label = envmod.run_size(env).label
    times = {}
    for i, path in enumerate(paths, 1):
        log(f"[{i}/{len(paths)}] {path.name} ({label} run) ...", flush=True)
        _, times[path.name] = execute(path, out, env=env, log=log)
        log(f"    done in {times[path.name]:.0f} s -> {Path(out) / path.name}", flush=True)
    return times


def plan(paths: list[Path], size: RunSize, device: str) -> str:
    """What a run of `paths` at `size` will do here, with minutes estimated from the measured
    `unirep_lite.runsize.MINUTES`: printed before every course run, so that nobody starts a multi-hour
    job by surprise."""
    lines = [f"Plan: {len(paths)} notebooks, {size.label} run (size {size.name!r}) on {device}."]
    total, known = 0.0, True
    for path in paths:
        # measured on a CPU only: a GPU's full run takes a fraction of it
        m = None if size.name == "full" and device != "cpu" else expected_minutes(path.name[:2], size)
        known = known and m is not None
        total += m or 0.0
        lines.append(f"  {path.name:38} " + (f"~{m:5.1f} min" if m is not None else "   not timed here"))
    where = f"on {REFERENCE}" if device == "cpu" else "(CPU timings; a GPU is much faster)"
    lines.append(f"  estimated total: {'~' if known else 'at least '}{total:.0f} min {where}")
    if size.name == "cpu":
        lines.append("  (the CPU-sized course: FAST data with longer schedules; the full run is written for a GPU:"
                     " `make course-full` or UNIREP_SIZE=full asks for it here, hours on a CPU)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = checks.ArgumentParser(prog="python -m tools.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "list", "plan"])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--fast", action="store_true", help="small CI-sized run (UNIREP_SIZE=fast)")
    size.add_argument("--full", action="store_true", help="the full run, also without a GPU (UNIREP_SIZE=full)")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name contains one of these")
    parser.add_argument("--out", type=Path, default=EXECUTED, help=f"folder for executed copies (default {EXECUTED})")
    args = parser.parse_args(argv)
    env = {**os.environ, **PAGE_ENV}
    if args.fast or args.full:
        env["UNIREP_SIZE"] = "fast" if args.fast else "full"
    try:
        run_size, device = envmod.run_size(env), envmod.default_device(env)
    except ValueError as err:  # a misspelt UNIREP_SIZE or UNIREP_DEVICE
        print(f"python -m tools.course: {err}", file=sys.stderr)
        return 2
    found = notebooks()
    if not found:
        print(f"python -m tools.course: no numbered notebooks (NN_name.ipynb) in {NOTEBOOKS}", file=sys.stderr)
        return 2
    selected = [p for p in found if not args.only or any(s in p.name for s in args.only)]
    if not selected:
        print(f"python -m tools.course: no notebook name contains any of {args.only}", file=sys.stderr)
        return 2
    if args.command == "list":
        print("\n".join(p.name for p in selected))
        return 0
    if args.command == "run":
        try:  # every executed copy's place, now, not after the first notebook has run
            for path in selected:
                check_output_path(args.out / path.name, "--out", make_parents=True)
        except ValueError as err:
            print(f"python -m tools.course: {err}", file=sys.stderr)
            return 2
    print(plan(selected, run_size, device.type), flush=True)
    if args.command == "plan":
        return 0
    start = time.perf_counter()
    try:
        run(selected, args.out, env=env)
    except Exception as err:  # show the failing cell's error (or the stall), not nbclient's internals
        print(f"\nfailed: {err}", file=sys.stderr)
        return 1
    print(f"all {len(selected)} notebooks executed in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
