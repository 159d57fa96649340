import pytest

from unirep_lite.table import Table, format_table

ROWS = [{"arm": "K=3", "accuracy (%)": 50.0}, {"arm": "K=13 <big>", "accuracy (%)": 100.0}]


def test_text_table_has_aligned_columns_and_no_trailing_spaces():
    lines = format_table(ROWS).splitlines()
    assert lines[0].startswith("arm") and set(lines[1]) <= {"-", " "}
    assert all(line == line.rstrip() for line in lines)
    assert lines[2].index("50.0") == lines[3].index("100.0") == lines[0].index("accuracy")
    assert format_table([]) == ""


def test_table_shows_html_in_jupyter_and_text_elsewhere():
    t = Table(ROWS, caption="one seed")
    page = t._repr_html_()
    assert page.count("<tr>") == 3 and "<caption>one seed</caption>" in page
    assert "&lt;big&gt;" in page and "<big>" not in page  # values are escaped
    assert repr(t) == format_table(ROWS) + "\none seed"


@pytest.mark.parametrize("rows", [[], [("K=3", 0.5)], None])
def test_table_rejects_what_is_not_rows_of_dicts(rows):
    with pytest.raises(ValueError, match="list of dicts"):
        Table(rows)
