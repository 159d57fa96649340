# Two commands on a fresh machine:  `make course` (the course's main job) and `make test`.
# Both create or refresh the virtual environment in .venv themselves and are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torchvision/torchaudio wheels on PyPI need PyTorch's regular build; ignore machine-local pip
# configuration (e.g. a CPU-only torch wheel directory) so everyone gets the same PyPI wheels.
PIP := env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(PY) -m pip
PYTEST_ARGS ?=

.PHONY: venv course course-full notebooks book test test-notebooks lock clean
venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e ".[dev,book,lab]"
	@touch $(STAMP)

## The course's main job: execute every notebook in order into build/notebooks/, then build the book from
## those executed notebooks (build/book/_build/html). The tools (tools/course.py, tools/book.py) run
## from this checkout; they are not part of the installed library. The size follows the hardware (unirep_lite.env.run_size):
## the full run on a GPU; without one a CPU-sized course (about an hour on 2 cores), after printing its plan.
## UNIREP_FAST=1: the small CI run; `make course-full` (UNIREP_SIZE=full): the full run anywhere.
course: venv
	$(PY) -m tools.course run
	$(PY) -m tools.book build --executed build/notebooks

course-full:
	UNIREP_SIZE=full $(MAKE) course

## The book alone: stages book/ + notebooks/, executes every notebook once in FAST mode, writes static HTML.
## Its JavaScript (RequireJS, ipywidgets HTML manager, MathJax) comes from npm (book/package-lock.json).
book: venv
	$(PY) -m tools.book build

## The whole test suite (FAST mode), executing every notebook once: first `pytest notebooks` executes
## each (a cell that raises fails its test) into build/test-notebooks/; then the library tests; the book
## built from those notebooks in tests/test_book.py (every page checked in headless Chromium); JupyterLab
## driven in Chromium on notebook 02 (tests/test_jupyterlab.py); the Colab and Binder installs, which run
## notebook 01 in fresh environments (tests/test_install.py). The 25 slowest tests are listed at the end.
test: venv
	UNIREP_FAST=1 $(VENV)/bin/pytest -q -p no:cacheprovider --durations=25 notebooks tests $(PYTEST_ARGS)

## What instructors run on their own machine: every notebook executed once (FAST unless UNIREP_FAST=0).
test-notebooks: venv
	$(VENV)/bin/pytest -q -p no:cacheprovider notebooks $(PYTEST_ARGS)

## Re-pin constraints.txt from the current environment (after changing pyproject.toml on purpose).
lock: venv
	$(PIP) freeze --exclude-editable | grep -v -i '^unirep' > constraints.txt

clean:
	rm -rf $(VENV) build book/_build book/node_modules
