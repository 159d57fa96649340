"""The book, as a reader sees it.

The book is built once for this module (`tools.book.build`) from the notebooks `pytest notebooks`
executed (build/test-notebooks/; `make test` runs them first, each once, in FAST mode: a cell that
raises fails there, and a notebook that failed or did not run fails the build here). Then every page is opened in headless Chromium with every host name made
unresolvable, so whatever renders was served by the site itself, and the DOM after JavaScript ran is
checked: no tracebacks or JS errors, every plotly figure drawn as SVG, every widget rendered, images
present, math typeset, nothing wider than its column (code cells, figures, the page) nor cut off by a
parent that clips its overflow (a wide table in a wrapper), and the static
explorers (unirep_lite.explorers) redraw when a slider step is clicked. A screenshot of every page, at
the width of a desktop browser, goes to build/book/screenshots/: look at them.

Without Chromium the browser checks are skipped, unless UNIREP_REQUIRE_BROWSER=1 (CI sets it).
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from tools import book as bk
from tools import course

OUT = bk.OUT
SHOTS = OUT / "screenshots"
NOTEBOOK_NAMES = [p.stem for p in course.notebooks()]
# the pages with a static explorer: the merged-kernel (02) and effective-receptive-field (04) notebooks
EXPLORER_PAGES = ["02_*", "04_*"]
WINDOW = "1400,1800"  # a desktop browser: both sidebars shown, the article ~750 px wide

CHROMIUM = next(filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])), None)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    # no network at view time: every host name fails to resolve, so a CDN dependency shows up as a
    # failed load (console) and as a figure, widget or formula that never rendered (DOM)
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr", "--v=0",
    "--virtual-time-budget=20000",  # let scripts run (plotly, widgets, MathJax) before the snapshot
]
needs_browser = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("UNIREP_REQUIRE_BROWSER") != "1",
    reason="chromium not installed (CI installs it: apt-get install chromium)")


# ----------------------------------------------------------------------------------------------------
# building


@pytest.fixture(scope="module")
def html() -> Path:
    """The built book's HTML folder, from the notebooks `pytest notebooks` executed (make test runs them
    first); the build fails, naming it, when one is missing or older than its source."""
    return bk.build(OUT, executed=course.TESTED).parent


def test_toc_puts_every_notebook_in_exactly_one_part():
    toc = yaml.safe_load((bk.BOOK / "_toc.yml").read_text())
    globs = [entry["glob"] for _, entry in bk.toc_globs(toc)]
    for name in NOTEBOOK_NAMES:
        hits = [g for g in globs if fnmatch.fnmatchcase(f"notebooks/{name}", g)]
        assert len(hits) == 1, f"notebooks/{name}.ipynb matches {hits} in book/_toc.yml; it needs exactly one part"


def test_every_notebook_has_colab_cells_first():
    import nbformat

    for path in course.notebooks():
        raw = json.loads(path.read_text())  # nbformat 4.5: every cell needs an id (nbformat adds them silently)
        assert all("id" in c for c in raw["cells"]), f"{path.name}: a cell has no id; run nbformat's normalize()"
        cells = nbformat.read(path, as_version=4).cells
        tags = [c.metadata.get("tags", []) for c in cells[:2]]
        assert len(cells) >= 2 and bk.BADGE_TAG in tags[0] and bk.INSTALL_TAG in tags[1], (
            f"{path.name} lacks the Colab badge + install cells: run `python -m tools.book colab`")


def test_notebooks_find_the_library_without_path_tricks():
    """JupyterLab, Binder, Colab and the book build all import the installed package and find data via
    unirep_lite.data.cache.data_root() (from the package's location), so no notebook edits sys.path
    or depends on its working directory."""
    import nbformat

    for path in course.notebooks():
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert not re.search(r"sys\.path\.(insert|append)|os\.chdir|%cd\b", cell.source), (
                    f"{path.name}: a cell changes sys.path or the working directory:\n{cell.source[:300]}")


def test_colab_cells_are_idempotent(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("1")])
    path = tmp_path / "07_demo.ipynb"
    nbformat.write(nb, path)
    assert bk.add_colab_cells(path) is True
    first = path.read_text()
    assert bk.add_colab_cells(path) is False and path.read_text() == first
    cells = nbformat.read(path, as_version=4).cells
    assert [c.source for c in cells[2:]] == ["# Title", "1"]
    url, branch = bk.repository()
    assert f"github/{url.removeprefix('https://github.com/')}/blob/{branch}/notebooks/07_demo.ipynb" in cells[0].source


def test_the_page_title_comes_before_the_setup_cells_output(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('FAST run')"),
                                         nbformat.v4.new_markdown_cell("# 7. Title\n\nThe story starts.")])
    path = tmp_path / "07_demo.ipynb"
    nbformat.write(nb, path)
    bk.title_first(path)
    cells = nbformat.read(path, as_version=4).cells
    assert [c.source for c in cells] == ["# 7. Title", "print('FAST run')", "The story starts."]
    nbformat.validate(nbformat.read(path, as_version=4))


def test_a_cell_that_raises_fails_the_build(tmp_path):
    import nbformat

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Broken"),
                                         nbformat.v4.new_code_cell("assert 1 == 2, 'deliberate failure'")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebooks / "01_broken.ipynb")
    with pytest.raises(RuntimeError, match="deliberate failure"):
        bk.build(tmp_path / "book", notebooks)


def test_book_builds_with_every_notebook_executed_without_errors(html):
    for name in NOTEBOOK_NAMES:
        assert (html / "notebooks" / f"{name}.html").is_file(), f"no page for notebooks/{name}.ipynb"
        executed = json.loads((html.parent / "jupyter_execute" / "notebooks" / f"{name}.ipynb").read_text())
        errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{name}: error output {errors[0].get('ename')}: {errors[0].get('evalue')}"


def test_pages_load_nothing_from_the_network(html):
    external = re.compile(r'<(?:script|img|iframe)[^>]*\ssrc="(https?:)?//|<link[^>]*rel="stylesheet"[^>]*href="(https?:)?//')
    for page in html.rglob("*.html"):
        if "_static" in page.parts:
            continue
        hit = external.search(page.read_text())
        assert not hit, f"{page.relative_to(html)} loads from the network: {hit.group(0)[:120]}"


# ----------------------------------------------------------------------------------------------------
# reading in Chromium


class Outline(HTMLParser):
    """Counts of the elements the checks need, from one HTML document (source or rendered DOM)."""

    def __init__(self, text: str):
        super().__init__()
        self.classes: list[set[str]] = []
        self.tags: dict[str, int] = {}
        self.imgs: list[str] = []
        self.widget_views = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.classes.append(set((a.get("class") or "").split()))
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "script" and a.get("type") == "application/vnd.jupyter.widget-view+json":
            self.widget_views += 1

    def count(self, cls: str) -> int:
        return sum(cls in c for c in self.classes)


def chromium(url: str, *extra: str, profile: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def page_with(page: Path, before: str, extra: str):
    """`page`, or with `extra` inserted before its first `before` tag: a copy next to the original (so
    relative links still work), removed afterwards."""
    if not extra:
        yield page
        return
    target = page.with_name(f"{page.stem}.__test__.html")
    target.write_text(page.read_text().replace(before, extra + before, 1))
    try:
        yield target
    finally:
        target.unlink()


def render(page: Path, script: str = "") -> tuple[str, list[str]]:
    """(DOM after scripts ran, console messages) of one page in a fresh headless Chromium.

    `script`: JavaScript to run in the page after it loaded (a check that writes its findings into
    the DOM); it runs in a copy of the page next to the original, so relative links still work.
    """
    with page_with(page, "</body>", f"<script>{script}</script>" if script else "") as target, \
            tempfile.TemporaryDirectory() as profile:
        run = chromium(target.as_uri(), "--dump-dom", f"--window-size={WINDOW}", profile=Path(profile))
    assert run.returncode == 0 and "</html>" in run.stdout, f"chromium failed on {page}: {run.stderr[-2000:]}"
    console = [m.group(1) for m in re.finditer(r":CONSOLE[^\]]*\] (.*)", run.stderr)]
    return run.stdout, console


def reports(dom: str, name: str) -> list[dict]:
    """The JSON objects a check script left in <pre class="NAME"> elements of the DOM."""
    import html as html_lib

    return [json.loads(html_lib.unescape(m)) for m in re.findall(rf'<pre class="{name}">(.*?)</pre>', dom, re.S)]


# Runs after the page's own scripts: every code cell, printed output, table and figure must fit the
# article's column, no figure may be shrunk so far that its text gets small, and the page must fit
# the window.
OVERFLOW_JS = """
window.addEventListener("load", function () { setTimeout(function () {
  var found = [];
  var check = function (el, what) {
    if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0)
      found.push(what + ": " + el.scrollWidth + " px in " + el.clientWidth + " px: " +
                 (el.textContent || "").trim().slice(0, 60));
  };
  document.querySelectorAll("div.cell_input pre").forEach(function (el) { check(el, "code"); });
  // printed text scrolls inside its <pre>, so the <pre> is what overflows, not the output around it
  document.querySelectorAll("div.cell_output .output, div.cell_output pre").forEach(function (el) { check(el, "output"); });
  document.querySelectorAll("article table").forEach(function (el) { check(el.parentElement, "table"); });
  // anything cut off by an ancestor that clips (overflow-x hidden, clip, auto or scroll), at any
  // depth: a table inside a wrapper inside an output div shows only the part that fits
  // (innermost first: a clipping box inside a clipping box is reported once, where it cuts; code and
  // printed output were checked above; plotly, MathJax (inline math spans clip by design) and widgets
  // lay out their own insides)
  var reported = new Set();
  Array.from(document.querySelectorAll("article *")).reverse().forEach(function (box) {
    var overflow = getComputedStyle(box).overflowX;
    if (overflow === "visible" || box.clientWidth === 0 || box.matches("pre, div.cell_output .output") ||
        box.closest(".js-plotly-plot, .math, mjx-container, .jupyter-widgets"))
      return;
    if (box.scrollWidth <= box.clientWidth + 2 || reported.has(box)) return;
    for (var up = box.parentElement; up; up = up.parentElement) reported.add(up);  // report the innermost
    var wide = Array.from(box.querySelectorAll("table, img, pre, svg")).find(function (el) {
      return el.getBoundingClientRect().right > box.getBoundingClientRect().right + 1; });
    var what = wide ? wide.tagName.toLowerCase() : "content";
    found.push(what + " cut off by " + box.tagName.toLowerCase() + (box.className ? "." +
               String(box.className).trim().split(/\\s+/).join(".") : "") + " (overflow-x: " + overflow +
               "): " + box.scrollWidth + " px in " + box.clientWidth + " px: " +
               ((wide || box).textContent || "").trim().replace(/\\s+/g, " ").slice(0, 60));
  });
  var column = document.querySelector("article");
  var right = column ? column.getBoundingClientRect().right : window.innerWidth;
  document.querySelectorAll("div.cell .cell_output img, .js-plotly-plot").forEach(function (el) {
    var box = el.getBoundingClientRect();
    if (box.right > right + 1) found.push("figure sticks out of the column by " + Math.round(box.right - right) + " px");
    // a figure wider than the column is shrunk into it, and its text with it: at 100 dpi 7-pt text
    // is ~10 px, so a figure shown at under 90% of its size has text under ~9 px
    if (el.naturalWidth > 0 && el.clientWidth < 0.9 * el.naturalWidth) {
      var cell = el.closest("div.cell"), code = cell && cell.querySelector(".cell_input pre");
      found.push("figure shown at " + Math.round(100 * el.clientWidth / el.naturalWidth) + "% of its " +
                 el.naturalWidth + " px (its text shrinks with it), after: " +
                 (code ? code.textContent.trim().slice(0, 60) : "?"));
    }
  });
  if (document.documentElement.scrollWidth > window.innerWidth + 1)
    found.push("page: " + document.documentElement.scrollWidth + " px wide in a " + window.innerWidth + " px window");
  var pre = document.createElement("pre");
  pre.className = "overflow-report";
  pre.textContent = JSON.stringify({problems: found});
  document.body.appendChild(pre);
}, 4000); });
"""

# Clicks the first step of every plotly slider and reports whether the drawn heatmaps and titles
# changed. Headless Chromium under a virtual time budget draws no frames, so frame callbacks (plotly
# runs a slider's step in one) are run on a timer here.
SLIDER_JS = """
window.requestAnimationFrame = function (cb) { return setTimeout(function () { cb(performance.now()); }, 16); };
window.addEventListener("load", function () { setTimeout(function () {
  var drawn = function (gd) {
    return Array.from(gd.querySelectorAll("image")).map(function (i) { return i.getAttribute("href") || ""; }).join("|") +
      Array.from(gd.querySelectorAll(".gtitle, .annotation-text")).map(function (t) { return t.textContent; }).join("|");
  };
  document.querySelectorAll(".js-plotly-plot").forEach(function (gd, i) {
    var rail = gd.querySelector(".slider-rail-touch-rect");
    if (!rail) return;
    var before = drawn(gd), box = rail.getBoundingClientRect();
    var at = {bubbles: true, view: window, clientX: box.left + 2, clientY: box.top + box.height / 2};
    rail.dispatchEvent(new MouseEvent("mousedown", at));
    gd.dispatchEvent(new MouseEvent("mouseup", at));
    setTimeout(function () {
      var pre = document.createElement("pre");
      pre.className = "slider-report";
      pre.textContent = JSON.stringify({figure: i, active: gd.layout.sliders[0].active, changed: drawn(gd) !== before});
      document.body.appendChild(pre);
    }, 1500);
  });
}, 5000); });
"""


def screenshot(page: Path, png: Path, size: str = WINDOW, scroll: int = 0) -> None:
    """A screenshot of `page` in a `size` window, scrolled down `scroll` px first."""
    # the page is moved up, not scrolled: headless Chromium draws a scrolled screenshot blank
    css = f"<style>body {{ margin-top: -{scroll}px; }}</style>" if scroll else ""
    with page_with(page, "</head>", css) as target, tempfile.TemporaryDirectory() as profile:
        run = chromium(target.as_uri(), f"--screenshot={png}", f"--window-size={size}", profile=Path(profile))
    assert run.returncode == 0 and png.is_file(), f"no screenshot of {page}: {run.stderr[-2000:]}"


HEIGHT_JS = """
window.addEventListener("load", function () { setTimeout(function () {
  var pre = document.createElement("pre");
  pre.className = "height-report";
  pre.textContent = JSON.stringify({height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
}, 4000); });
"""


def screenshots(page: Path, folder: Path, part: int = 8000) -> list[Path]:
    """The whole of `page`, top to bottom, as screenshots of `part` px each (headless Chromium has no
    full-page shot): folder/STEM.png, then STEM-2.png, STEM-3.png, ..."""
    dom, _ = render(page, HEIGHT_JS)
    height = reports(dom, "height-report")[0]["height"]
    shots = []
    for k, top in enumerate(range(0, height, part)):
        png = folder / (f"{page.stem}.png" if k == 0 else f"{page.stem}-{k + 1}.png")
        screenshot(page, png, size=f"1400,{part}", scroll=top)
        shots.append(png)
    return shots


def page_problems(page: Path) -> list[str]:
    """Everything a reader would see broken on `page`, as readable lines (empty: the page is fine)."""
    source = page.read_text()
    dom, console = render(page)
    src, out = Outline(source), Outline(dom)
    problems = []
    if "Traceback (most recent call last)" in dom or out.count("traceback"):
        problems.append("a traceback is shown")
    problems += [f"JS console: {m[:200]}" for m in console
                 if re.search(r"Uncaught|Failed to load resource|ERR_|is not defined", m)]
    # every plotly figure, in a cell's output or inside a widget's saved output: Plotly.newPlot marks its
    # div `js-plotly-plot` and draws <svg class="main-svg"> layers into it
    figures = max(src.count("plotly-graph-div"), out.count("plotly-graph-div"))
    drawn = sum({"plotly-graph-div", "js-plotly-plot"} <= c for c in out.classes)
    if drawn < figures or out.count("main-svg") < figures:
        problems.append(f"{figures} plotly figures, {drawn} drawn ({out.count('main-svg')} SVG layers)")
    if src.widget_views:
        # the HTML manager renders each saved view into a widget-subarea holding lumino widgets
        areas, views = out.count("widget-subarea"), out.count("lm-Widget")
        if min(areas, views) < src.widget_views or out.count("widget-error"):
            problems.append(f"{src.widget_views} widgets saved, {areas} rendered ({views} widget views)")
    for img in out.imgs:
        if not img:
            problems.append("an <img> without src")
        elif not img.startswith("data:") and not (page.parent / img.split("?")[0].split("#")[0]).is_file():
            problems.append(f"image {img} missing")
    if 'class="math' in source and "<mjx-container" not in dom:
        problems.append("math not typeset (MathJax did not run)")
    if "<mjx-merror" in dom:  # (MathJax's own stylesheet names the tag too)
        problems.append("MathJax reports a formula error")
    return problems


@needs_browser
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_page_renders_for_a_reader(html, name):
    problems = page_problems(html / "notebooks" / f"{name}.html")
    assert not problems, f"notebooks/{name} as rendered in Chromium:\n  " + "\n  ".join(problems)


@needs_browser
def test_intro_and_part_pages_render_for_a_reader(html):
    pages = [p for p in html.rglob("*.html") if "notebooks" not in p.parts and "_static" not in p.parts
             and p.name not in {"genindex.html", "search.html", "index.html"}]
    assert html / "intro.html" in pages
    report = {p.relative_to(html).as_posix(): page_problems(p) for p in pages}
    broken = {k: v for k, v in report.items() if v}
    assert not broken, f"pages broken in Chromium: {broken}"


@needs_browser
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_nothing_is_wider_than_the_column(html, name):
    dom, _ = render(html / "notebooks" / f"{name}.html", OVERFLOW_JS)
    found = reports(dom, "overflow-report")
    assert found, f"notebooks/{name}: the overflow check did not run"
    assert not found[0]["problems"], f"notebooks/{name} overflows:\n  " + "\n  ".join(found[0]["problems"])


@needs_browser
def test_overflow_check_finds_what_a_clipping_parent_cuts_off(tmp_path):
    """The overflow check itself, on a small page: a table inside a wrapper that hides (or scrolls)
    its overflow is reported, however deep; a table that fits, and wide content in a parent that
    lets it show, are not."""
    wide = "<table><tr>" + "".join(f"<td>column&nbsp;{i}</td>" for i in range(40)) + "</tr></table>"
    narrow = "<table><tr><td>fits</td></tr></table>"
    page = tmp_path / "page.html"
    page.write_text(
        "<!DOCTYPE html><html><head><style>article { width: 600px; } .cut { overflow: hidden; }"
        " .scroll { overflow-x: auto; }</style></head><body><article>"
        f'<div class="scroll"><div class="cut"><div class="inner">{wide}</div></div></div>'
        f'<div class="scroll">{wide}</div>'
        f'<div class="cut">{narrow}</div>'
        "</article></body></html>")
    dom, _ = render(page, OVERFLOW_JS)
    problems = reports(dom, "overflow-report")[0]["problems"]
    cut = [p for p in problems if "cut off by" in p]
    assert any(p.startswith("table cut off by div.cut (overflow-x: hidden)") for p in cut), problems
    assert any(p.startswith("table cut off by div.scroll (overflow-x: auto)") for p in cut), problems
    assert len(cut) == 2 and not any("fits" in p for p in problems), problems  # the inner one only


@needs_browser
def test_static_explorers_change_when_their_slider_moves(html):
    pages = [p for pattern in EXPLORER_PAGES for p in sorted((html / "notebooks").glob(pattern + ".html"))]
    if not pages:
        pytest.skip("notebooks 02 and 04 don't exist yet")
    for page in pages:
        dom, _ = render(page, SLIDER_JS)
        found = reports(dom, "slider-report")
        assert found, f"{page.stem}: no plotly figure with a slider (the static explorer is missing)"
        for r in found:
            assert r["active"] == 0, f"{page.stem}: the click did not move slider {r}"
            assert r["changed"], f"{page.stem}: figure {r['figure']} looks the same after a slider step"


@needs_browser
def test_screenshot_of_every_page(html):
    """Every page, whole, in screenshots of 8000 px each, in build/book/screenshots/."""
    shutil.rmtree(SHOTS, ignore_errors=True)  # no shot of an earlier build stays to be looked at
    SHOTS.mkdir(parents=True)
    pages = [p for p in sorted(html.rglob("*.html")) if "_static" not in p.parts
             and p.name not in {"genindex.html", "search.html", "index.html"}]
    for page in pages:
        for png in screenshots(page, SHOTS):
            assert png.stat().st_size > 10_000, f"{png.name}: screenshot looks blank"
