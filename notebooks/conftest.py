"""`pytest notebooks/` executes every course notebook once, top to bottom, as one test each: a cell that
raises fails its notebook's test with the cell and its traceback (every notebook checks its claims with
`assert`s; outputs are not compared).

Each notebook is executed by `tools.course.execute` (nbclient with the stall watch: a stalled kernel is
retried once, then fails with a message that says so) the way the book build executes it (FAST unless
UNIREP_FAST / UNIREP_SIZE say otherwise; explorers as static figures, no progress bars), and the executed
copy is written to build/test-notebooks/. tests/test_book.py builds the book from those copies, so
`make test` (`pytest notebooks tests`) executes every notebook once. Notebook tests run first whatever
the order of the arguments. nbval is not used here: the outputs it collects are not the notebook Jupyter
would save (no widget state, no clear_output), which the book needs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("UNIREP_FAST", "1")  # before any kernel starts: kernels inherit it

from tools import course  # noqa: E402

NOTEBOOK = re.compile(r"\d\d_.+\.ipynb")


def pytest_addoption(parser):
    parser.addoption("--stall-seconds", type=float, default=course.STALL_SECONDS,
                     help="a notebook kernel quiet (no output, no CPU) this long has stalled")
    parser.addoption("--executed-out", default=str(course.TESTED),
                     help="folder for the executed notebooks (the book test builds from them)")


def pytest_configure(config):
    config.addinivalue_line("markers", "notebook: executes a course notebook")
    if getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        raise pytest.UsageError("notebooks/conftest.py executes the notebooks itself (once, for the tests and "
                                "the book): run `pytest notebooks` without --nbval/--nbval-lax")


def pytest_collect_file(file_path, parent):
    if NOTEBOOK.fullmatch(file_path.name) and ".ipynb_checkpoints" not in file_path.parts:
        return NotebookFile.from_parent(parent, path=file_path)


def pytest_collection_modifyitems(items):
    # the book test builds from what the notebook tests wrote: they run first
    items.sort(key=lambda item: not isinstance(item, NotebookRun))


class NotebookFile(pytest.File):
    def collect(self):
        item = NotebookRun.from_parent(self, name="execute")
        item.add_marker("notebook")  # -m "not notebook" leaves them out
        yield item


class NotebookRun(pytest.Item):
    def runtest(self):
        target = Path(self.config.option.executed_out) / self.path.name
        target.unlink(missing_ok=True)  # a failed run leaves no page behind for the book
        course.execute(self.path, target, env={**os.environ, **course.PAGE_ENV},
                       stall_seconds=self.config.option.stall_seconds)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, course.KernelStalled) or type(excinfo.value).__name__ == "CellExecutionError":
            return f"{self.path.name} failed:\n{excinfo.value}"  # the cell and its traceback, not nbclient's frames
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.path.name} executed"
