"""nbval setup: `pytest --nbval-lax notebooks/` executes every notebook, top to bottom, and fails the
cell that raises (every notebook checks its claims with `assert`s; outputs are not compared, so no
output needs sanitising). `make test` runs it in FAST mode.

Runs are FAST unless UNIREP_FAST is set otherwise, with a per-cell limit sized to FAST cells. A
stalled kernel (a cell that runs while the kernel uses no CPU for `course.STALL_SECONDS`, the hang of
ipykernel 7 with notebook clients) fails its cell with a message that says so, instead of waiting.
"""
from __future__ import annotations

import os
import signal
import threading

import pytest

os.environ.setdefault("UNIREP_FAST", "1")  # before any kernel starts: kernels inherit it

from unirep_lite import course  # noqa: E402
from unirep_lite.env import fast_mode  # noqa: E402

NBVAL_DEFAULT_TIMEOUT = 2000.0


def pytest_configure(config):
    if fast_mode() and getattr(config.option, "nbval_cell_timeout", None) == NBVAL_DEFAULT_TIMEOUT:
        config.option.nbval_cell_timeout = float(course.FAST_CELL_TIMEOUT)


class _Stalled(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    kernel = getattr(getattr(item, "parent", None), "kernel", None)
    km = getattr(kernel, "km", None)
    pid = getattr(getattr(km, "provisioner", None), "pid", None)
    if type(item).__name__ != "IPyNbCell" or pid is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    seconds = float(os.environ.get("UNIREP_STALL_SECONDS", course.STALL_SECONDS))
    watch, done, stalled = course.StallWatch(pid, seconds), threading.Event(), threading.Event()

    def on_signal(signum, frame):
        if stalled.is_set() and not done.is_set():
            raise _Stalled()

    def watcher():
        while not done.wait(min(5.0, seconds / 4)):
            if watch.check():
                stalled.set()
                signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
                return

    previous = signal.signal(signal.SIGUSR1, on_signal)
    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    try:
        outcome = yield
    finally:
        done.set()
        thread.join()
        signal.signal(signal.SIGUSR1, previous)
    if stalled.is_set() and isinstance(outcome.excinfo and outcome.excinfo[1], _Stalled):
        outcome.force_exception(course.KernelStalled(
            f"{item.name}: the kernel stalled: the cell was still running but the kernel used no CPU for "
            f"{seconds:.0f} s (a hung kernel, e.g. ipykernel 7 with notebook clients; constraints.txt pins "
            f"ipykernel 6)"))
