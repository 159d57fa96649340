"""A Sphinx extension for the book (listed in book/_config.yml): offline fix-ups of the rendered pages.

It removes the CDN MathJax that plotly's renderer adds to every figure (the page already has MathJax
from the site), adds a MathJax-2 shim for widget labels, and drops inline scripts added twice.
"""
from __future__ import annotations

import re

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


def setup(app):
    app.connect("doctree-resolved", _strip_cdn_scripts)
    app.connect("html-page-context", _page_scripts, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
