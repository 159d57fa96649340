"""Rows of dicts as a table: fixed-width text where text is shown (print, scripts, logs), an HTML
table in a notebook and the book, where a wide text table would need a horizontal scrollbar.

    display(Table(rows, caption="mean over 3 seeds"))   # in a notebook
    print(format_table(rows))                           # anywhere
"""
from __future__ import annotations

import html


def format_table(rows: list[dict]) -> str:
    """Rows of dicts as a plain fixed-width text table (the first row's keys are the columns)."""
    if not rows:
        return ""
    cols = list(rows[0])
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])


class Table:
    """A table that Jupyter shows as HTML (`_repr_html_`) and everything else as text (`repr`)."""

    def __init__(self, rows: list[dict], caption: str = ""):
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"Table needs a non-empty list of dicts (one per row), got {rows!r:.200}")
        self.rows, self.caption = list(rows), caption

    def __repr__(self) -> str:
        return format_table(self.rows) + (f"\n{self.caption}" if self.caption else "")

    def _repr_html_(self) -> str:
        cols = list(self.rows[0])
        cell = lambda tag, v: f"<{tag}>{html.escape(str(v))}</{tag}>"  # noqa: E731
        head = "".join(cell("th", c) for c in cols)
        body = "".join("<tr>" + "".join(cell("td", r.get(c, "")) for c in cols) + "</tr>" for r in self.rows)
        caption = cell("caption", self.caption) if self.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
