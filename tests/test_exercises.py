"""Every notebook ends with its exercises, each followed by its solution as a collapsed code cell.

The convention: a markdown cell `## Exercises`, then for each exercise a markdown cell with its
numbered text ("**1. Title.** ..."), followed by exactly one code cell tagged
["solution", "hide-cell"] that holds a runnable solution (the book collapses it; `pytest notebooks`
executes it with the rest of the notebook, so a solution that raises fails there). No `<details>`
solution blocks. These checks read the source notebooks only: nothing is executed here.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from tools import book as bk
from tools import course

NOTEBOOKS = course.notebooks()
SOLUTION_TAGS = ["solution", "hide-cell"]
EXERCISE = re.compile(r"\*\*(\d+)\.\s")  # "**1. Title.** text"


def exercise_problems(cells) -> list[str]:
    """What breaks the exercise convention in a notebook's cells (empty: nothing)."""
    heads = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    problems = [f"cell {i}: a <details> block (solutions go into a code cell tagged {SOLUTION_TAGS})"
                for i, c in enumerate(cells) if c.cell_type == "markdown" and "<details" in c.source.lower()]
    problems += [f"cell {i}: tagged 'solution' but not a solution cell after an exercise"
                 for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])
                 and not (heads and i > heads[0] and cells[i - 1].cell_type == "markdown")]
    if len(heads) != 1:
        return problems + [f"{len(heads)} markdown cells start with '## Exercises'; there must be one"]
    head = heads[0]
    listed = EXERCISE.search(cells[head].source) or re.search(r"^\s*1\.\s", cells[head].source, re.M)
    if listed:
        problems.append(f"cell {head}: the exercises are listed in the '## Exercises' cell; give each its own "
                        "markdown cell ('**1. Title.** ...') followed by its solution cell")
    rest = cells[head + 1:]
    if not rest and not listed:
        problems.append(f"cell {head}: '## Exercises' is followed by no exercise")
    for j in range(0, len(rest), 2):
        i = head + 1 + j
        text = rest[j]
        match = EXERCISE.match(text.source) if text.cell_type == "markdown" else None
        if match is None:
            problems.append(f"cell {i}: expected exercise {j // 2 + 1} as a markdown cell starting "
                            f"'**{j // 2 + 1}. ', got a {text.cell_type} cell: {text.source[:60]!r}")
            continue
        if int(match.group(1)) != j // 2 + 1:
            problems.append(f"cell {i}: exercise numbered {match.group(1)}, expected {j // 2 + 1}")
        if j + 1 >= len(rest):
            problems.append(f"cell {i}: exercise {match.group(1)} has no solution cell after it")
            continue
        sol = rest[j + 1]
        where = f"cell {i + 1} (solution of exercise {match.group(1)})"
        if sol.cell_type != "code":
            problems.append(f"{where}: a {sol.cell_type} cell; the solution must be a code cell")
            continue
        if sol.metadata.get("tags") != SOLUTION_TAGS:
            problems.append(f"{where}: tags {sol.metadata.get('tags')}, expected {SOLUTION_TAGS}")
        code = [line for line in sol.source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if not code:
            problems.append(f"{where}: holds no code (a text answer goes in a comment next to a computed check)")
            continue
        try:
            ast.parse("\n".join("pass" if line.lstrip().startswith(("%", "!")) else line
                                for line in sol.source.splitlines()))
        except SyntaxError as err:
            problems.append(f"{where}: not valid Python ({err.msg}, line {err.lineno})")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_ends_with_exercises_and_their_solution_cells(path: Path):
    problems = exercise_problems(nbformat.read(path, as_version=4).cells)
    assert not problems, f"{path.name} breaks the exercise convention:\n  " + "\n  ".join(problems)


def _nb(*cells):
    return [nbformat.v4.new_markdown_cell(s) if kind == "md" else
            nbformat.v4.new_code_cell(s, metadata={"tags": list(tags)})
            for kind, s, *tags in cells]


def test_the_checker_accepts_the_convention_and_names_what_breaks_it():
    good = _nb(("md", "# 1. Title"), ("md", "## Exercises"),
               ("md", "**1. One.** Do it."), ("code", "print(1)", "solution", "hide-cell"),
               ("md", "**2. Two.** Again."), ("code", "# answer: 2\nassert 1 + 1 == 2", "solution", "hide-cell"))
    assert exercise_problems(good) == []
    assert any("no solution cell" in p for p in exercise_problems(good[:-1]))
    untagged = good[:3] + _nb(("code", "print(1)"))
    assert any("tags []" in p for p in exercise_problems(untagged))
    comment_only = good[:3] + _nb(("code", "# see the text", "solution", "hide-cell"))
    assert any("no code" in p for p in exercise_problems(comment_only))
    details = good[:2] + _nb(("md", "**1. One.** Do it.\n<details><summary>Solution</summary>x</details>"),
                             ("code", "print(1)", "solution", "hide-cell"))
    assert any("<details>" in p for p in exercise_problems(details))
    listed = _nb(("md", "## Exercises\n\n1. **One.** Do it."))
    assert any("listed in the '## Exercises' cell" in p for p in exercise_problems(listed))
    assert any("there must be one" in p for p in exercise_problems(good[:1]))


def test_the_book_collapses_solution_cells():
    """Jupyter Book 1 (myst-nb) renders a cell tagged hide-cell inside a closed <details> toggle; the
    book's configuration must not switch tags off or remove code cells' sources."""
    config = yaml.safe_load((bk.BOOK / "_config.yml").read_text())
    sphinx = (config.get("sphinx") or {}).get("config") or {}
    for key in ("nb_remove_code_source", "nb_remove_code_outputs"):
        assert not sphinx.get(key), f"book/_config.yml sets {key}: solution cells would not show"


def test_the_built_book_shows_solutions_collapsed():
    """After tests/test_book.py built the book (make test), every solution cell sits in a closed toggle."""
    html = bk.OUT / "_build" / "html" / "notebooks"
    pages = sorted(html.glob("*.html"))
    if not pages:
        pytest.skip(f"no built book in {html} (tests/test_book.py builds it in `make test`)")
    for page in pages:
        text = page.read_text()
        for cell in re.split(r'(?=<div class="cell )', text)[1:]:
            if "tag_solution" not in cell[:300]:
                continue
            head = cell[:1500]
            assert re.search(r'<details class="[^"]*\bhide\b[^"]*">', head), (
                f"{page.name}: a solution cell is not wrapped in a hide toggle:\n{head[:400]}")
            assert not re.search(r"<details[^>]*\bopen\b", head), f"{page.name}: a solution toggle is open"
