"""A page never says anything about its run that the run contradicts.

A notebook runs at one of three sizes (FAST in CI, CPU-sized or full on a reader's machine), so
what it says about *this* run must come from the run: the label from `SIZE.label`, numbers from
computed values (run-dependent sentences are generated with `IPython.display.Markdown`). These
checks hold every page to that, cheaply:

  - source notebooks: markdown cells state no run-dependent numbers (epochs, minutes, seconds,
    percentages, speed-ups), unless they quote the paper (the sentence or table names the paper) or
    are listed in ALLOWED with the reason; code cells hard-code no run label ("FAST run" in a string
    literal) and markdown does not name one as this run's;
  - executed notebooks (build/test-notebooks/, written by `pytest notebooks`, which `make test` runs
    first, and build/notebooks/, written by `make course`; skipped where absent): the run label the setup cell printed (describe_run) is the one
    every later output names, and no output prints a size flag such as "FAST=True".

Failure messages name the notebook, the cell (index in the .ipynb, counting from 0) and the text.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from tools import book as bk
from tools import course
from unirep_lite.runsize import LABELS

NOTEBOOKS = course.notebooks()
IDS = [p.stem for p in NOTEBOOKS]

# a number with a unit that depends on the run: epochs, wall time, a percentage, a speed-up
RUN_NUMBER = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s*(?:%|epochs?\b|minutes?\b|seconds?\b|sec\b)|\s+(?:s|min)\b"
    r"|\s*(?:x|×|times) (?:faster|slower)\b)")
# a sentence (or table) that quotes the paper may state its numbers, and so may one about chance level
RUN_INDEPENDENT = re.compile(r"\bpaper\b|\bTable \d+|\bDing et al|\bchance\b|\bguess", re.I)
# markdown that names a size as this run's ("this FAST run"); describing a size is fine
THIS_RUN = re.compile(r"\b(?:this|the present|our) (?:FAST|CPU-sized|full)(?: run| mode)\b", re.I)
# a run label hard-coded in a code cell's string literal (use SIZE.label). Describing a size is fine:
# a literal naming both small sizes ("FAST / CPU-sized: 64 x 64"), or one after an article ("the
# CPU-sized run trains longer", said in a FAST run)
LABEL_LITERAL = re.compile(r"\bFAST\b|\bCPU-sized\b")
DESCRIBED = re.compile(r"\b(?:[Tt]he|[Aa]n?) (?:FAST|CPU-sized)\b")
# how outputs name a small run ("the full run trains 40 epochs" describes the full size, in any run),
# and how describe_run names this run in the setup cell's output
OUTPUT_LABEL = re.compile(r"\b(FAST|CPU-sized) (?:run|mode)\b")
SETUP_LABEL = re.compile(r"^unirep_lite \S+: (FAST|CPU-sized|full) run \(size '(\w+)'\)", re.M)
SIZE_FLAG = re.compile(r"\b(?:UNIREP_)?FAST\s*=\s*(?:True|False|[01])\b|\bfast=(?:True|False)\b")

# (notebook prefix, text the hit's sentence contains): why that run-dependent-looking number is not
ALLOWED: dict[tuple[str, str], str] = {
    ("09", "train first 70%"): "the split's design (unirep_lite.data.weather), the same at every size",
    ("10", "One mark alone gives at most"): "the pairs task's design (one mark alone: 5 of 6 right at best), the same at every size",
}


def sentences(text: str) -> list[str]:
    """Markdown split into sentences and table rows (a table's rows after its header carry the header)."""
    out, header = [], None
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if lines and all(line.lstrip().startswith("|") for line in lines):  # a table
            header = lines[0]
            out += [f"{header} {row}" for row in lines[2:]]
            continue
        out += re.split(r"(?<=[.!?])\s+(?=[A-Z(*`])", " ".join(line.strip() for line in lines))
    return out


def markdown_problems(name: str, cells) -> list[str]:
    problems = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        # math, code (fenced and inline) and link targets say nothing about the run
        text = re.sub(r"```.*?```", "```…```", cell.source, flags=re.S)
        text = re.sub(r"\$\$.*?\$\$|\$[^$\n]*\$", "$…$", text, flags=re.S)
        text = re.sub(r"`[^`\n]*`", "`…`", text)
        text = re.sub(r"\(([^()\s]*https?://[^()\s]*)\)", "(…)", text)
        for sentence in sentences(text):
            if RUN_INDEPENDENT.search(sentence) or any(name.startswith(nb) and snippet in sentence
                                                    for nb, snippet in ALLOWED):
                continue
            for hit in RUN_NUMBER.finditer(sentence):
                problems.append(f"{name} cell {i} (markdown): run-dependent number {hit.group(0)!r} in "
                                f"{sentence.strip()[:160]!r}: generate it from the run (IPython.display.Markdown)")
            for hit in THIS_RUN.finditer(sentence):
                problems.append(f"{name} cell {i} (markdown): names {hit.group(0)!r} in {sentence.strip()[:160]!r}: "
                                "the size comes from SIZE.label")
    return problems


def string_literals(source: str) -> list[str]:
    """The string constants of a code cell (f-strings' constant parts included); [] if it won't parse."""
    code = "\n".join("pass" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def code_problems(name: str, cells) -> list[str]:
    problems = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or bk.INSTALL_TAG in cell.metadata.get("tags", []):
            continue
        for literal in string_literals(cell.source):
            if len(set(LABEL_LITERAL.findall(literal))) == 1 and not DESCRIBED.search(literal):
                problems.append(f"{name} cell {i} (code): the string {literal[:100]!r} names a run size; "
                                "print SIZE.label instead")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_source_states_no_run_dependent_claims(path: Path):
    cells = nbformat.read(path, as_version=4).cells
    problems = markdown_problems(path.name, cells) + code_problems(path.name, cells)
    assert not problems, "\n".join(problems)


def output_text(cell) -> str:
    """What a code cell showed as text: streams, plain text and Markdown (not HTML or images)."""
    parts = []  # saved notebooks hold text as a string or as a list of lines
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append("".join(out.get("text", "")))
        for mime in ("text/markdown", "text/plain"):
            value = out.get("data", {}).get(mime)
            if value:
                parts.append("".join(value))
                break
    return "".join(parts)


def output_problems(name: str, nb: dict) -> list[str]:
    cells = nb["cells"]
    setup = next((i for i, c in enumerate(cells) if bk.INSTALL_TAG in c.get("metadata", {}).get("tags", [])), None)
    if setup is None:
        return [f"{name}: no setup cell ({bk.INSTALL_TAG})"]
    found = SETUP_LABEL.search(output_text(cells[setup]))
    if found is None:
        return [f"{name} cell {setup}: the setup cell printed no run label (describe_run)"]
    label, size = found.groups()
    problems = []
    recorded = nb.get("metadata", {}).get("unirep_lite", {}).get("size")
    if recorded and LABELS.get(recorded) != label:
        problems.append(f"{name} cell {setup}: printed a {label} run, executed as {recorded!r}")
    for i, cell in enumerate(cells[setup + 1:], setup + 1):
        text = output_text(cell) if cell["cell_type"] == "code" else ""
        for hit in OUTPUT_LABEL.finditer(text):
            if hit.group(1) != label:
                line = next(line for line in text.splitlines() if hit.group(0) in line)
                problems.append(f"{name} cell {i} (output): says {hit.group(0)!r} in a {label} run: {line.strip()[:160]!r}")
        for hit in SIZE_FLAG.finditer(text):
            problems.append(f"{name} cell {i} (output): prints {hit.group(0)!r}; print SIZE.label ({label!r})")
    return problems


@pytest.mark.parametrize("folder", [course.TESTED, course.EXECUTED], ids=["tested", "course"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_outputs_name_the_run_they_come_from(path: Path, folder: Path):
    """On the FAST pages `pytest notebooks` wrote, and on `make course`'s run (CPU-sized without a GPU),
    where a label hard-coded for the FAST run would show."""
    executed = folder / path.name
    if not executed.is_file():
        pytest.skip(f"{executed} not there: `pytest notebooks` (make test) or `make course` writes it")
    problems = output_problems(path.name, json.loads(executed.read_text()))
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------- the checks

def test_the_checks_catch_what_they_are_for():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [md("Trained for 5 epochs in 3 min, it reaches 81.5% accuracy. The paper reports 93.2%. "
                "Always guessing one class scores 10%."),
             md("| model | paper top-1 |\n|---|---|\n| A | 77.0% |"),
             md("In this FAST run the learned front-end wins. The FAST run uses 32 x 32 views."),
             md("The `cfg.epochs = 5` field and $10^{-4}$ stay. A 3 x 3 conv and 48 hours are fine.\n"
                "```python\nprint(f'{x:8s} 5 epochs')\n```")]
    problems = markdown_problems("x.ipynb", cells)
    assert [p.split(":")[1].split("'")[1] for p in problems if "number" in p] == ["5 epochs", "3 min", "81.5%"]
    assert len([p for p in problems if "this FAST run" in p]) == 1
    assert all(p.startswith("x.ipynb cell 0") or p.startswith("x.ipynb cell 2") for p in problems)
    code_cells = [code('print("FAST run on", DEVICE)'), code('print(f"{SIZE.label} run")'),
                  code("x = 1  # FAST and CPU-sized runs: small"), code('print(f"FAST={SIZE.small}")'),
                  code('title = "FAST / CPU-sized: 64 x 64"; size = RunSize("fast")'),
                  code('note = "the CPU-sized run trains longer" if SIZE.name == "fast" else ""')]
    assert [p.split(" (")[0] for p in code_problems("x.ipynb", code_cells)] == ["x.ipynb cell 0", "x.ipynb cell 3"]

    def out(text):
        return {"cell_type": "code", "metadata": {}, "source": "",
                "outputs": [{"output_type": "stream", "name": "stdout", "text": text}]}
    setup = out("unirep_lite 0.1: CPU-sized run (size 'cpu') on cpu (2 threads).\nExpected: ... full about 20 min")
    setup["metadata"]["tags"] = [bk.INSTALL_TAG]
    nb = {"metadata": {"unirep_lite": {"size": "cpu"}},
          "cells": [setup, out("CPU-sized run on cpu; the full run trains 40 epochs\n"),
                    out(["FAST run, ", "3 epochs\n"]), out("FAST=True\n")]}
    problems = output_problems("x.ipynb", nb)
    assert len(problems) == 2 and "cell 2" in problems[0] and "'FAST run'" in problems[0], problems
    assert "cell 3" in problems[1] and "FAST=True" in problems[1], problems
