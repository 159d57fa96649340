"""Running the course (tools/course.py): the stall watch of every notebook execution, the first cell of
every notebook, the deprecated commands of the library, and the one place where the course lives."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata as md
from pathlib import Path

import nbformat
import pytest

from tools import book, course
from unirep_lite import book as old_book
from unirep_lite import course as old_course
from unirep_lite import runsize

ROOT = Path(__file__).resolve().parents[1]


def notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


# ----------------------------------------------------------------------------------------------------
# no hangs


def test_ipykernel_is_pinned_below_7():
    """ipykernel 7 can leave notebook clients waiting forever on an idle kernel (CI hung in the book build)."""
    assert int(md.version("ipykernel").split(".")[0]) < 7
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line)
    assert pins["ipykernel"].startswith("6.")


def test_a_stalled_kernel_is_retried_once_then_reported(tmp_path):
    # a cell that waits without output or CPU looks, from outside, exactly like a hung kernel
    path = notebook(tmp_path / "stall.ipynb", "print('started')", "import time; time.sleep(120)")
    lines = []
    start = time.monotonic()
    with pytest.raises(course.KernelStalled, match=r"stalled in cell 1.*\n(.|\n)*stalled twice"):
        course.execute(path, stall_seconds=3, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert time.monotonic() - start < 90
    assert len(lines) == 1 and "retrying once with a fresh kernel" in lines[0]


def test_a_kernel_that_stalls_once_runs_on_the_retry(tmp_path):
    marker = tmp_path / "first-attempt"
    path = notebook(tmp_path / "once.ipynb",
                    f"import os, time\nfirst = not os.path.exists({str(marker)!r})\nopen({str(marker)!r}, 'w').close()\n"
                    "time.sleep(120 if first else 0)\nprint('second attempt' if not first else 'first')")
    out = tmp_path / "executed"
    nb, _ = course.execute(path, out, stall_seconds=3, log=lambda *a, **k: None)
    assert nb.cells[0].outputs[0]["text"] == "second attempt\n"
    assert course.run_record(out / "once.ipynb")["seconds"] >= 0


def test_a_cell_that_computes_without_output_is_not_a_stall(tmp_path):
    path = notebook(tmp_path / "busy.ipynb", "import time\nt = time.time()\nwhile time.time() - t < 8: pass\nprint('done')")
    nb, seconds = course.execute(path, stall_seconds=3, retry=False)
    assert nb.cells[0].outputs[0]["text"] == "done\n" and seconds >= 8


def test_pytest_notebooks_fails_a_stalled_notebook_with_a_clear_message(tmp_path):
    """notebooks/conftest.py executes each notebook with the same stall watch as the course run."""
    shutil.copy2(ROOT / "notebooks" / "conftest.py", tmp_path / "conftest.py")
    notebook(tmp_path / "01_stall.ipynb", "print('hi')", "import time; time.sleep(120)")
    notebook(tmp_path / "02_fine.ipynb", "print('fine')")
    out = tmp_path / "executed"
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--stall-seconds=4",
                          f"--executed-out={out}", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode != 0 and "the kernel stalled in cell 1" in run.stdout, run.stdout[-2000:]
    assert run.stdout.startswith("F."), run.stdout[-2000:]  # 01 failed, 02 passed
    assert sorted(p.name for p in out.iterdir()) == ["02_fine.ipynb"]  # a failed notebook leaves no copy
    assert course.run_record(out / "02_fine.ipynb")["size"] == "fast"
    assert time.monotonic() - start < 120


def test_notebook_tests_run_before_the_others(tmp_path):
    """The book test builds from what the notebook tests wrote, whatever the order of pytest's arguments."""
    (tmp_path / "nb").mkdir()
    shutil.copy2(ROOT / "notebooks" / "conftest.py", tmp_path / "nb" / "conftest.py")
    notebook(tmp_path / "nb" / "01_a.ipynb", "print(1)")
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                          "test_x.py", "nb"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.stdout.split()[:2] == ["nb/01_a.ipynb::execute", "test_x.py::test_x"], run.stdout[-2000:]


def test_pytest_notebooks_refuses_nbval(tmp_path):
    shutil.copy2(ROOT / "notebooks" / "conftest.py", tmp_path / "conftest.py")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode != 0 and "without --nbval" in run.stderr, run.stderr[-2000:]


def test_fast_cells_have_a_limit_of_minutes():
    assert 60 <= course.FAST_CELL_TIMEOUT <= 1200 and course.STALL_SECONDS <= 300  # reported within 5 minutes


# ----------------------------------------------------------------------------------------------------
# every notebook's first code cell


@pytest.mark.parametrize("path", course.notebooks(), ids=lambda p: p.stem)
def test_first_code_cell_installs_if_needed_and_states_the_mode(path):
    cells = nbformat.read(path, as_version=4).cells
    first = next(c for c in cells if c.cell_type == "code")
    assert book.INSTALL_TAG in first.metadata.get("tags", [])
    assert f'describe_run("{path.name[:2]}"' in first.source
    assert path.name[:2] in runsize.MINUTES, f"runsize.MINUTES has no expected minutes for {path.name}"


def test_the_old_describe_run_forwards_to_the_library(monkeypatch, capsys):
    """Notebooks import unirep_lite.course.describe_run until their first cells call runsize's."""
    monkeypatch.setenv("UNIREP_SIZE", "fast")
    monkeypatch.setenv("UNIREP_DEVICE", "cpu")
    monkeypatch.setenv("UNIREP_BINDER", "1")
    old_course.describe_run("09")
    old = capsys.readouterr().out
    runsize.describe_run("09", runsize.FAST, "cpu", binder=True)
    assert old == capsys.readouterr().out and "Binder runs the small course" in " ".join(old.split())


def test_the_old_commands_forward_to_the_tools_or_say_what_they_need(monkeypatch, tmp_path, capsys):
    run = subprocess.run([sys.executable, "-m", "unirep_lite.course", "list", "--only", "01"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0 and run.stdout.split() == [p.name for p in course.notebooks() if "01" in p.name]
    assert "deprecated: run `python -m tools.course`" in run.stderr
    monkeypatch.setattr(old_course, "__file__", str(tmp_path / "site-packages" / "unirep_lite" / "course.py"))
    assert old_book.main(["colab"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a source checkout" in err and "python -m tools.book" in err


def test_plan_estimates_minutes_from_the_library_table():
    text = course.plan(course.notebooks()[:2], runsize.CPU, "cpu")
    assert "CPU-sized run (size 'cpu') on cpu" in text
    first = runsize.expected_minutes(course.notebooks()[0].name[:2], runsize.CPU)
    assert f"~{first:5.1f} min" in text and "on 2 CPU cores" in text
    assert "not timed here" in course.plan(course.notebooks()[:1], runsize.FULL, "cuda")


def test_binder_start_turns_fast_mode_on():
    start = ROOT / "binder" / "start"
    assert start.stat().st_mode & 0o111, "binder/start must be executable"
    run = subprocess.run([str(start), "sh", "-c", "echo $UNIREP_FAST $UNIREP_BINDER"], capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"})
    assert run.stdout.split() == ["1", "1"]


# ----------------------------------------------------------------------------------------------------
# one place for where the course lives


def test_setup_cells_are_generated_from_the_one_setting(tmp_path):
    """`python -m tools.book colab` would change nothing: badges and setup cells match pyproject.toml."""
    for path in course.notebooks():
        copy = tmp_path / path.name
        shutil.copy2(path, copy)
        assert book.add_colab_cells(copy) is False, f"{path.name}: run `python -m tools.book colab`"
        assert copy.read_text() == path.read_text()


def test_no_other_repository_url_is_written_anywhere():
    url, branch = book.repository()
    owner_repo = url.removeprefix("https://github.com/")
    files = subprocess.check_output(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                                    cwd=ROOT, text=True).split()
    for name in files:
        if name == "pyproject.toml" or not (ROOT / name).is_file() or name.endswith((".json", ".lock")):
            continue
        try:
            text = (ROOT / name).read_text()
        except UnicodeDecodeError:
            continue
        # this project's repository, in a link, a badge or an install spec: only the configured one
        for hit in re.findall(r"github\.com/([\w.-]+/unirep[_-]lite)\b|colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)", text):
            hit = hit[0] or hit[1]
            assert hit == owner_repo, f"{name} names {hit}; the repository is set once, in pyproject.toml"
        for spec in re.findall(r"git\+(https://github\.com/[\w.-]+/[\w.-]+?)(?:\.git)?@([\w.-]+)", text):
            assert spec == (url, branch), f"{name} has its own install spec {spec}"


def test_setup_cell_pins_match_constraints():
    pins = book.colab_pins()
    constraints = dict(line.lower().split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line)
    assert pins and all(constraints[k.lower().replace("_", "-")] == v for k, v in pins.items())
    assert not {"torch", "torchvision", "torchaudio", "jupyterlab"} & set(pins)  # Colab's own are kept
    source = json.dumps(book.colab_cells("01_x.ipynb")[1].source)
    assert all(f'\\"{k}\\": \\"{v}\\"' in source for k, v in pins.items())


def test_course_run_executes_pages_like_the_book_build(monkeypatch):
    """`make course` builds the book from course.run's copies, so they are executed as the book build
    executes: static explorers, no progress bars."""
    monkeypatch.setenv("UNIREP_SIZE", "full")
    seen = {}
    monkeypatch.setattr(course, "run", lambda paths, out, env=None, **kw: seen.update(env=env) or {})
    assert course.main(["run", "--fast", "--only", "01"]) == 0
    assert {k: seen["env"][k] for k in course.PAGE_ENV} == course.PAGE_ENV
    assert seen["env"]["UNIREP_SIZE"] == "fast"  # --fast wins over the environment
    assert course.PAGE_ENV.items() <= book.BUILD_ENV.items()
