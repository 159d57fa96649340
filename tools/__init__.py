"""Repository tooling beside the library (not in the wheel): the course runner and the book builder.

Run from the repository root: `python -m tools.course run`, `python -m tools.book build`.
"""
