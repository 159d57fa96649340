"""Build the course as a static Jupyter Book, and keep the notebooks' Colab cells up to date.

    python -m tools.book build     # stage book/ + notebooks/, execute in FAST mode, write HTML
    python -m tools.book build --executed build/notebooks   # use notebooks executed before
    python -m tools.book colab     # insert/refresh the Colab badge + setup cell in every notebook

Where the course lives (repository URL, branch, install spec) is written once, in pyproject.toml's
`[tool.unirep_lite]`; the badges, the setup cells and the book's launch buttons are generated from it.
Notebooks are executed by `tools.course.execute` (which watches for stalled kernels), never by
Jupyter Book itself (`execute_notebooks: off`), so a build can also reuse `make course`'s outputs
(and tests/test_book.py those of `pytest notebooks`).

The book is built from a staged copy (build/book/src/) that mirrors the repository's layout
(notebooks/NN_*.ipynb at the same path), so the launch buttons point at the real notebook files and
the notebooks in git are never touched by a build. Everything a page loads at view time is served
from the site itself: plotly.js is inlined by plotly's `notebook` renderer, and RequireJS, the
ipywidgets HTML manager and MathJax are copied from the npm packages in book/package.json.

The pages' offline fix-ups are a Sphinx extension of their own, tools/sphinx_offline.py.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from unirep_lite import checks
from unirep_lite.runsize import LABELS

from . import course

ROOT = course.ROOT
BOOK = ROOT / "book"
NOTEBOOKS = course.NOTEBOOKS
OUT = ROOT / "build" / "book"
NODE_MODULES = BOOK / "node_modules"

# What the book copies from the npm packages into its _static/ folder: (source, target).
ASSETS = [
    ("requirejs/require.js", "require.js"),
    ("@jupyter-widgets/html-manager/dist", "widgets"),
    ("mathjax/es5", "mathjax"),
]
# Files of those packages the site does not need (source maps, other bundles of the same code).
ASSET_SKIP = ["*.map", "embed.js", "libembed-amd.js", "*.LICENSE.txt", "tex-*full*.js", "tex-svg*.js",
              "mml-*.js", "tex-chtml.js", "tex-mml-svg.js", "tex-mml-chtml-*.js"]

# Build-time environment: the small runs (plotly figures are saved for JupyterLab and as self-contained
# HTML by tools.course.execute, which is what the static page shows). UNIREP_BOOK=1: explorers
# render their precomputed plotly version (a widget on a static page is frozen; unirep_lite.explorers);
# TQDM_DISABLE=1: no progress bars on the page (JupyterLab keeps them).
BUILD_ENV = {"UNIREP_FAST": "1", "UNIREP_SIZE": "fast", **course.PAGE_ENV}

# The tags that mark the two cells `colab` manages: the badge is hidden in the book (it has launch
# buttons); of the setup cell the book shows only what it printed (mode, device, expected minutes).
BADGE_TAG, INSTALL_TAG = "colab-badge", "colab-install"
# book/execution.md's placeholder for the table of run times (filled in by build())
TIMES_MARKER = "<!-- execution-times -->"
PYPROJECT = ROOT / "pyproject.toml"


def settings() -> dict:
    """pyproject.toml's [tool.unirep_lite]: `repository`, `branch` and the derived `install` spec."""
    import tomllib

    table = tomllib.loads(PYPROJECT.read_text()).get("tool", {}).get("unirep_lite", {})
    if "repository" not in table:
        raise ValueError(f"{PYPROJECT} has no [tool.unirep_lite] table with `repository = \"https://github.com/...\"`")
    url, branch = table["repository"].rstrip("/"), table.get("branch", "main")
    if not url.startswith("https://github.com/"):
        raise ValueError(f"[tool.unirep_lite] repository must be a https://github.com/owner/name URL, got {url!r}")
    return {"repository": url, "branch": branch, "install": table.get("install", f"git+{url}@{branch}")}


def repository() -> tuple[str, str]:
    """(url, branch) from pyproject.toml's [tool.unirep_lite]: the one place the repository is written down."""
    config = settings()
    return config["repository"], config["branch"]


def colab_pins() -> dict[str, str]:
    """{package: version} for every runtime dependency except PyTorch's three, pinned as in constraints.txt
    (the versions CI tests). The setup cell installs the ones a Colab runtime lacks at these versions."""
    import tomllib

    names = [re.split(r"[<>=!~\[ ;]", r.strip(), maxsplit=1)[0]
             for r in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line:
            pkg, version = line.split("==")
            pins[pkg.strip().lower().replace("_", "-")] = version.strip()
    keep = {"torch", "torchvision", "torchaudio"}
    missing = [n for n in names if n.lower() not in keep and n.lower().replace("_", "-") not in pins]
    if missing:
        raise ValueError(f"constraints.txt has no pin for {missing}: run `make lock`")
    return {n: pins[n.lower().replace("_", "-")] for n in names if n.lower() not in keep}


# ---------------------------------------------------------------------------------------------------
# Assets and staging


def ensure_assets() -> Path:
    """Install book/package-lock.json's packages with `npm ci` unless node_modules already matches."""
    lock = BOOK / "package-lock.json"
    stamp = NODE_MODULES / ".package-lock.json"  # npm writes it on install
    if stamp.is_file() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return NODE_MODULES
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm not found: the book serves RequireJS, the ipywidgets manager and MathJax "
                                "from npm packages (book/package.json); install Node.js >= 18 with npm")
    print("installing the book's JavaScript (npm ci in book/) ...", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BOOK, check=True)
    return NODE_MODULES


def stage(src: Path, notebook_dir: Path = NOTEBOOKS) -> list[Path]:
    """Copy book/, the numbered notebooks and the JS assets into `src` (emptied first)."""
    modules = ensure_assets()
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(BOOK, src, ignore=shutil.ignore_patterns("node_modules", "_build", "package*.json"))
    found = course.notebooks(notebook_dir)
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {notebook_dir}")
    (src / "notebooks").mkdir()
    for nb in found:
        shutil.copy2(nb, src / "notebooks" / nb.name)
    prune_toc(src / "_toc.yml", [f"notebooks/{nb.stem}" for nb in found])
    write_repository(src / "_config.yml")
    static = src / "_assets"  # not `_static`: Jupyter Book would add every .js in there to every page
    for source, target in ASSETS:
        path = modules / source
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: run `npm ci` in {BOOK}")
        if path.is_dir():
            shutil.copytree(path, static / target, ignore=shutil.ignore_patterns(*ASSET_SKIP), dirs_exist_ok=True)
        else:
            static.mkdir(exist_ok=True)
            shutil.copy2(path, static / target)
    return found


def toc_globs(toc: dict) -> list[tuple[dict, dict]]:
    """(chapter, glob entry) for every `glob:` in a jb-book table of contents."""
    return [(chapter, entry) for part in toc.get("parts", []) for chapter in part["chapters"]
            for entry in chapter.get("sections", []) if "glob" in entry]


def prune_toc(path: Path, docnames: list[str]) -> None:
    """Drop globs (and then part pages) of `path` that match no notebook yet: Sphinx warns, -W fails."""
    import yaml

    toc = yaml.safe_load(path.read_text())
    for chapter, entry in toc_globs(toc):
        if not any(fnmatch.fnmatchcase(name, entry["glob"]) for name in docnames):
            chapter["sections"].remove(entry)
    # a part page whose notebooks don't exist yet is left out, not shown empty
    for part in toc.get("parts", []):
        part["chapters"] = [c for c in part["chapters"] if c.get("sections", True)]
    toc["parts"] = [part for part in toc.get("parts", []) if part["chapters"]]
    path.write_text(yaml.safe_dump(toc, sort_keys=False))


def write_repository(config: Path) -> None:
    """Fill the staged _config.yml's `repository:` block from [tool.unirep_lite] (launch buttons read it)."""
    import yaml

    data = yaml.safe_load(config.read_text())
    url, branch = repository()
    data.setdefault("repository", {}).update({"url": url, "branch": branch})
    config.write_text(yaml.safe_dump(data, sort_keys=False))


def execute_staged(found: list[Path], staged: Path, executed: Path | None = None) -> dict[str, dict]:
    """Execute the staged notebooks in place (FAST, in the staged folder), or copy already executed
    ones from `executed` (e.g. `make course`'s build/notebooks). Returns {name: run record}.

    Raises RuntimeError naming the notebook when a cell raises or the kernel stalls twice.
    """
    records = {}
    for i, nb in enumerate(found, 1):
        target = staged / nb.name
        if executed is not None:
            done = Path(executed) / nb.name
            if not done.is_file() or done.stat().st_mtime < nb.stat().st_mtime:
                raise RuntimeError(f"{done} is missing or older than {nb}: execute it first (`python -m tools.course "
                                   f"run` for the course, `pytest notebooks` for the tests; a failed execution "
                                   f"leaves none), or build without --executed")
            shutil.copy2(done, target)
        else:
            print(f"  [{i}/{len(found)}] executing {nb.name} (FAST) ...", flush=True)
            try:
                course.execute(target, target, env={**os.environ, **BUILD_ENV})
            except Exception as err:  # CellExecutionError shows the cell and its traceback
                raise RuntimeError(f"{nb.name} failed while building the book:\n{err}") from None
        records[nb.stem] = course.run_record(target)
        title_first(target)
    return records


def title_first(path: Path) -> None:
    """Put the notebook's `# title` line first on its page, above what the setup cell printed (the mode
    line); in the notebook itself the setup cells come first so Colab runs them first."""
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and text.startswith("# "):
            title, _, rest = text.partition("\n")
            cell["source"] = rest.lstrip("\n")
            if not cell["source"].strip():
                del nb["cells"][i]
            head = {"cell_type": "markdown", "id": f"{cell.get('id', 'title')}-title", "metadata": {}, "source": title}
            nb["cells"].insert(0, head)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False))
            return


def times_table(records: dict[str, dict]) -> str:
    """The execution page's table: notebook, mode, device, seconds (from each notebook's run record)."""
    rows = ["| notebook | size | device | run time |", "|---|---|---|---|"]
    for name, r in records.items():
        seconds = r.get("seconds")
        rows.append(f"| {{doc}}`notebooks/{name}` | {LABELS.get(r.get('size'), 'FAST' if r.get('fast') else 'full')} | "
                    f"{r.get('device', '?')} | {'?' if seconds is None else f'{seconds:.0f} s'} |")
    return "\n".join(rows)


def build(out: Path = OUT, notebook_dir: Path = NOTEBOOKS, executed: Path | None = None) -> Path:
    """Stage and build the book; every notebook is executed once (FAST mode), or taken from `executed`.
    Returns index.html.

    Raises RuntimeError when the build fails, in particular when any notebook cell raises.
    """
    src = out / "src"
    found = stage(src, notebook_dir)
    html = out / "_build" / "html"
    if html.exists():
        shutil.rmtree(html)  # no page of an earlier build may survive a failed one
    start = time.perf_counter()
    print(f"building the book: {len(found)} notebooks" +
          (f" executed before, from {executed}" if executed else ", each executed once in FAST mode") + " ...",
          flush=True)
    records = execute_staged(found, src / "notebooks", executed)
    page = src / "execution.md"
    if page.is_file():
        page.write_text(page.read_text().replace(TIMES_MARKER, times_table(records)))
    # the Sphinx extension tools.sphinx_offline is imported from this checkout
    env = {**os.environ, **BUILD_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    jb = Path(sys.executable).with_name("jb")
    cmd = [str(jb) if jb.exists() else "jb", "build", str(src), "--path-output", str(out),
           "--builder", "html", "--warningiserror", "--keep-going", "--quiet"]
    result = subprocess.run(cmd, env=env, cwd=src)
    if result.returncode != 0 or not (html / "index.html").is_file():
        logs = sorted((html / "reports").glob("**/*.log")) if (html / "reports").exists() else []
        detail = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs)
        raise RuntimeError(f"book build failed (exit {result.returncode}); see the log above.\n{detail}")
    (html / "execution_times.json").write_text(json.dumps({f"notebooks/{k}": v.get("seconds") for k, v in records.items()}, indent=1))
    for name, r in records.items():
        print(f"    {name}: executed in {r.get('seconds') or 0:.0f} s ({LABELS.get(r.get('size'), '?')})")
    print(f"book built in {time.perf_counter() - start:.0f} s", flush=True)
    return html / "index.html"


# ---------------------------------------------------------------------------------------------------
# Colab cells


def colab_cells(name: str) -> tuple[dict, dict]:
    """The badge (markdown) and setup (code) cells for notebook `name`, from [tool.unirep_lite]."""
    import nbformat

    config = settings()
    github = config["repository"].removeprefix("https://github.com/")
    badge = nbformat.v4.new_markdown_cell(
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{github}/blob/{config['branch']}/notebooks/{name})",
        metadata={"tags": [BADGE_TAG, "remove-cell"]})
    entries, lines = [f'"{k}": "{v}"' for k, v in colab_pins().items()], [""]
    for entry in entries:  # a few entries per line, never split inside one
        if lines[-1] and len(lines[-1]) + len(entry) > 80:
            lines.append("")
        lines[-1] += ("" if not lines[-1] else " ") + entry + ","
    pins = ("\n" + " " * 12).join(lines).rstrip(",")
    install = nbformat.v4.new_code_cell(
        "# Setup. Where unirep_lite is missing (Colab), install it and only the packages this runtime lacks,\n"
        "# at the versions CI tests, keeping its PyTorch. Offline: set UNIREP_INSTALL to a wheel or checkout.\n"
        "import importlib.util, importlib.metadata as md, os, subprocess, sys\n"
        "if importlib.util.find_spec(\"unirep_lite\") is None:\n"
        "    have = {d.metadata[\"Name\"].lower().replace(\"_\", \"-\"): d.version for d in md.distributions()}\n"
        f"    pins = {{{pins}}}\n"
        "    keep = [f\"{n}=={have[n]}\" for n in (\"torch\", \"torchvision\", \"torchaudio\") if n in have]\n"
        "    lacking = [f\"{n}=={v}\" for n, v in pins.items() if n not in have]\n"
        f"    spec = os.environ.get(\"UNIREP_INSTALL\", \"{config['install']}\")\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", spec, *lacking, *keep], check=True)\n"
        "    importlib.invalidate_caches()\n"
        "    now = {d.metadata[\"Name\"].lower().replace(\"_\", \"-\"): d.version for d in md.distributions()}\n"
        "    print(\"installed:\", \", \".join(f\"{n} {v}\" for n, v in sorted(now.items()) if have.get(n) != v))\n"
        "    print(\"kept:\", \", \".join(keep) or \"-\")\n"
        "# The run size and the device: decided here, once, and passed to everything below.\n"
        "from unirep_lite import env\n"
        "from unirep_lite.runsize import RunSize, describe_run\n"
        "SIZE = env.run_size()  # or RunSize(\"fast\"), RunSize(\"cpu\"), RunSize(\"full\")\n"
        "DEVICE = env.default_device()\n"
        f"describe_run(\"{name[:2]}\", SIZE, DEVICE, binder=env.on_binder())",
        metadata={"tags": [INSTALL_TAG, "remove-input"]})
    return badge, install


def add_colab_cells(path: Path) -> bool:
    """Put the badge and setup cells first in notebook `path`, replacing earlier ones. True if changed.

    Only those two cells are rewritten (keeping their ids); the rest of the file is left byte for byte.
    """
    import nbformat

    raw = json.loads(path.read_text())
    badge, install = colab_cells(path.name)
    managed = {BADGE_TAG, INSTALL_TAG}
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in raw["cells"]]
    rest = [c for c, t in zip(raw["cells"], tags) if not managed & t]
    for cell, tag in ((badge, BADGE_TAG), (install, INSTALL_TAG)):  # keep the ids of the cells replaced
        ids = [c.get("id") for c, t in zip(raw["cells"], tags) if tag in t]
        if ids and ids[0]:
            cell["id"] = ids[0]
    new = [json.loads(json.dumps(c, sort_keys=True)) for c in (badge, install)]
    for cell in new:
        if isinstance(cell.get("source"), str):  # as stored on disk: a list of lines
            cell["source"] = cell["source"].splitlines(keepends=True)
    if raw["cells"][:2] == new and len(rest) == len(raw["cells"]) - 2:
        return False
    raw["cells"] = new + rest
    nbformat.validate(nbformat.reads(json.dumps(raw), as_version=4))
    path.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n")
    return True


# ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = checks.ArgumentParser(prog="python -m tools.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "colab", "assets"])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="folder of NN_*.ipynb")
    parser.add_argument("--executed", type=Path, default=None,
                        help="use the executed notebooks in this folder (e.g. build/notebooks from "
                             "`python -m tools.course run`) instead of executing them again")
    args = parser.parse_args(argv)
    if args.command == "assets":
        print(ensure_assets())
    elif args.command == "colab":
        for path in course.notebooks(args.notebooks):
            print(f"{path.name}: {'updated' if add_colab_cells(path) else 'up to date'}")
    else:
        try:
            index = build(args.out, args.notebooks, args.executed)
        except (RuntimeError, FileNotFoundError) as err:
            print(err, file=sys.stderr)
            return 1
        print(f"\nThe book is ready: open {index.as_uri()}\n"
              f"(or serve it: {Path(sys.executable).name} -m http.server -d {index.parent} 8000)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
