"""Build the course as a static Jupyter Book, and keep the notebooks' Colab cells up to date.

    python -m unirep_lite.book build     # stage book/ + notebooks/, execute in FAST mode, write HTML
    python -m unirep_lite.book colab     # insert/refresh the Colab badge + install cell in every notebook

The book is built from a staged copy (build/book/src/) that mirrors the repository's layout
(notebooks/NN_*.ipynb at the same path), so the launch buttons point at the real notebook files and
the notebooks in git are never touched by a build. Everything a page loads at view time is served
from the site itself: plotly.js is inlined by plotly's `notebook` renderer, and RequireJS, the
ipywidgets HTML manager and MathJax are copied from the npm packages in book/package.json.

This module is also a Sphinx extension (listed in book/_config.yml): it removes the CDN MathJax that
plotly's renderer adds to every figure, since the page already has MathJax from the site.
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

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
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

# Build-time environment: small runs, and plotly figures saved both for JupyterLab (mimetype) and as
# self-contained HTML with plotly.js inlined (notebook), which is what the static page shows.
# UNIREP_BOOK=1: explorers render their precomputed plotly version (a widget on a static page is
# frozen; unirep_lite.explorers); TQDM_DISABLE=1: no progress bars on the page (JupyterLab keeps them).
BUILD_ENV = {"UNIREP_FAST": "1", "PLOTLY_RENDERER": "plotly_mimetype+notebook", "UNIREP_BOOK": "1",
             "TQDM_DISABLE": "1"}

# The tags that mark the two cells `colab` manages; both are hidden in the book (it has launch buttons).
BADGE_TAG, INSTALL_TAG = "colab-badge", "colab-install"


def repository() -> tuple[str, str]:
    """(url, branch) from book/_config.yml: the one place the repository URL is written down."""
    text = (BOOK / "_config.yml").read_text()
    block = re.search(r"^repository:\n((?:[ \t]+.*\n)+)", text, re.M)
    if not block:
        raise ValueError("book/_config.yml has no `repository:` block with `url:` and `branch:`")
    fields = dict(re.findall(r"^\s+(\w+):\s*([^\s#]+)", block.group(1), re.M))
    return fields["url"].rstrip("/"), fields.get("branch", "main")


def notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


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
    found = notebooks(notebook_dir)
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {notebook_dir}")
    (src / "notebooks").mkdir()
    for nb in found:
        shutil.copy2(nb, src / "notebooks" / nb.name)
    prune_toc(src / "_toc.yml", [f"notebooks/{nb.stem}" for nb in found])
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


def build(out: Path = OUT, notebook_dir: Path = NOTEBOOKS) -> Path:
    """Stage and build the book; every notebook is executed once (FAST mode). Returns index.html.

    Raises RuntimeError when the build fails, in particular when any notebook cell raises.
    """
    src = out / "src"
    found = stage(src, notebook_dir)
    env = {**os.environ, **BUILD_ENV}
    jb = Path(sys.executable).with_name("jb")
    cmd = [str(jb) if jb.exists() else "jb", "build", str(src), "--path-output", str(out),
           "--builder", "html", "--warningiserror", "--keep-going", "--quiet"]
    html = out / "_build" / "html"
    if html.exists():
        shutil.rmtree(html)  # no page of an earlier build may survive a failed one
    print(f"building the book: {len(found)} notebooks, each executed once in FAST mode ...", flush=True)
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=src)
    if result.returncode != 0 or not (html / "index.html").is_file():
        logs = sorted((html / "reports").glob("**/*.log")) if (html / "reports").exists() else []
        detail = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs)
        raise RuntimeError(f"book build failed (exit {result.returncode}); see the log above.\n{detail}")
    times = json.loads((html / "execution_times.json").read_text())
    for doc, seconds in times.items():
        print(f"    {doc}: executed in {seconds:.0f} s" if seconds is not None else f"    {doc}: not executed")
    print(f"book built in {time.perf_counter() - start:.0f} s", flush=True)
    return html / "index.html"


# ---------------------------------------------------------------------------------------------------
# Colab cells


def colab_cells(name: str) -> tuple[dict, dict]:
    """The badge (markdown) and install (code) cells for notebook `name`."""
    import nbformat

    url, branch = repository()
    github = url.removeprefix("https://github.com/")
    badge = nbformat.v4.new_markdown_cell(
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{github}/blob/{branch}/notebooks/{name})",
        metadata={"tags": [BADGE_TAG, "remove-cell"]})
    install = nbformat.v4.new_code_cell(
        "# On Colab (which has PyTorch already) install unirep_lite once; elsewhere it is installed.\n"
        "import importlib.util, subprocess, sys\n"
        "if importlib.util.find_spec(\"unirep_lite\") is None:\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"git+{url}@{branch}\"], check=True)",
        metadata={"tags": [INSTALL_TAG, "remove-cell"]})
    return badge, install


def add_colab_cells(path: Path) -> bool:
    """Put the badge and install cells first in notebook `path`, replacing earlier ones. True if changed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    badge, install = colab_cells(path.name)
    managed = {BADGE_TAG, INSTALL_TAG}
    rest = [c for c in nb.cells if not managed & set(c.get("metadata", {}).get("tags", []))]
    old = [(c.cell_type, c.source, c.metadata.get("tags")) for c in nb.cells[:2]]
    new = [(c.cell_type, c.source, c.metadata.get("tags")) for c in (badge, install)]
    if old == new and len(rest) == len(nb.cells) - 2:
        return False
    nb.cells = [badge, install] + rest
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return True


# ---------------------------------------------------------------------------------------------------
# Sphinx extension: offline fix-ups of the rendered pages

# plotly's HTML renderer puts a CDN MathJax <script> into every figure; the page has MathJax already.
CDN_MATHJAX = re.compile(r'<script[^>]*src="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/[^"]*"[^>]*>\s*</script>')


def _strip_cdn_scripts(app, doctree, docname) -> None:
    from docutils import nodes

    for node in doctree.findall(nodes.raw):
        if "cdnjs.cloudflare.com/ajax/libs/mathjax" in node.astext():
            text = CDN_MATHJAX.sub("", node.astext())
            node.children = [nodes.Text(text)]


def _page_scripts(app, pagename, templatename, context, doctree) -> None:
    """Per page: MathJax-2 shim for widget labels after MathJax; drop inline scripts added twice."""
    scripts = context.get("script_files", [])
    if any("mathjax" in str(js) and not getattr(js, "attributes", {}).get("body") for js in scripts):
        app.add_js_file("mathjax2-hub-shim.js", priority=501, loading_method="defer")
    # sphinx-thebe adds its `const THEBE_JS_URL = ...` script twice (filename None, then ""): the
    # second raises a SyntaxError in the browser
    seen, unique = set(), []
    for js in scripts:
        key = (getattr(js, "filename", js) or "", getattr(js, "attributes", {}).get("body"))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def _report_execution(app, exception) -> None:
    """Keep each notebook's run time in this build in <html>/execution_times.json (build() prints it)."""
    if exception or app.builder.format != "html":
        return
    from myst_nb.sphinx_ import NbMetadataCollector

    times = {doc: data["exec_data"].get("runtime") for doc, data in
             sorted(NbMetadataCollector.get_doc_data(app.env).items()) if data.get("exec_data")}
    (Path(app.outdir) / "execution_times.json").write_text(json.dumps(times, indent=1))


def setup(app):
    app.connect("build-finished", _report_execution)
    app.connect("doctree-resolved", _strip_cdn_scripts)
    app.connect("html-page-context", _page_scripts, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unirep_lite.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "colab", "assets"])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="folder of NN_*.ipynb")
    args = parser.parse_args(argv)
    if args.command == "assets":
        print(ensure_assets())
    elif args.command == "colab":
        for path in notebooks(args.notebooks):
            print(f"{path.name}: {'updated' if add_colab_cells(path) else 'up to date'}")
    else:
        try:
            index = build(args.out, args.notebooks)
        except (RuntimeError, FileNotFoundError) as err:
            print(err, file=sys.stderr)
            return 1
        print(f"\nThe book is ready: open {index.as_uri()}\n"
              f"(or serve it: {Path(sys.executable).name} -m http.server -d {index.parent} 8000)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
