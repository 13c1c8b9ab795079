"""File import attacked: formula cells are stored as text and exported defused, Markdown and HTML in a file stay
text on the page (cells, errors, file names), oversize and binary files are refused before they are read, and an
OFX file's entity definitions are never expanded."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.errors import BadFile
from finance.file_import import FileImports
from finance.filters import TransactionFilter
from finance.imports.csv_reader import ColumnMapping, read_csv, sniff
from finance.imports.ofx_reader import read_ofx
from finance.imports.text import MAX_FILE_BYTES, MAX_ROWS, MAX_TEXT
from finance.services import Transactions
from finance.store import console
from tests.conftest import ok

pytestmark = pytest.mark.engines

APP = str(Path(__file__).resolve().parents[1] / "app.py")
FIXTURES = Path(__file__).parent / "fixtures" / "imports"
MAPPING = ColumnMapping(date="Data", description="Descrição", amount="Valor")
FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(A1:A9)", "-2+3", "@HYPERLINK(\"http://evil.example\")", "\t=1+1"]


def test_formula_cells_are_stored_as_text_and_exported_defused(engine: sa.Engine):
    imports = FileImports(engine)
    account_id = imports.create_account("Conta", "BRL", "checking", actor="test")
    sink = io.StringIO()
    csv.writer(sink, delimiter=";").writerows([["Data", "Descrição", "Valor"]] + [
        [f"0{i + 1}/01/2020", text, "-1,00"] for i, text in enumerate(FORMULAS)])
    imports.commit(imports.preview(account_id, "f.csv", sink.getvalue().encode(), MAPPING), {}, actor="test")
    with engine.connect() as conn:
        stored = {r[0] for r in conn.execute(sa.text("SELECT description FROM transactions"))}
    assert stored == {" ".join(f.split()) for f in FORMULAS}  # as the file says (whitespace tidied), not evaluated

    exported = pa_csv.read_csv(io.BytesIO(Transactions(engine).export(TransactionFilter(), "csv")))
    for cell in exported.column("description").to_pylist() + exported.column("merchant").to_pylist():
        assert cell.startswith("'") and cell[1:] in stored
    text = console.to_csv_bytes(pa.table({"description": sorted(stored)})).decode()  # the console's CSV too
    assert all(line.startswith(("description", "'", "\"'")) for line in text.splitlines())


def test_markdown_and_html_in_a_file_stay_text_on_the_page(demo_copy: Path):
    at = AppTest.from_file(APP, default_timeout=60)
    ok(at.run())
    at.switch_page("pages/import_files.py")
    ok(at.run())
    hostile = "[click me](http://evil.example) **bold** <img src=x onerror=alert(1)>"
    bad = f"Data;Descrição;Valor\n01/01/2020;ok;-1,00\n02/01/2020;x;{hostile}\n".encode()
    at.file_uploader[0].set_value((f"{hostile}.csv", bad, "text/csv"))
    at = ok(at.run())
    [error] = at.error
    assert "Line 3" in error.value and "\\[click me\\]\\(http" in error.value  # escaped: no live link

    good = f"Data;Descrição;Valor\n01/01/2020;{hostile};-1,00\n".encode()
    at.file_uploader[0].set_value((f"{hostile}.csv", good, "text/csv"))
    at = ok(at.run())
    at.button(key="imp_commit").click()
    at = ok(at.run())
    history = next(d.value for d in at.dataframe if "File" in d.value.columns)
    assert history["File"].iloc[0] == f"{hostile}.csv"
    rendered = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.success]
    assert not any("](http://evil.example)" in text for text in rendered)
    assert not any("<img" in text for text in rendered)


def test_oversize_and_binary_files_are_refused_before_reading():
    with pytest.raises(BadFile, match="at most 10 MB"):
        sniff(b"a;b\n" * (MAX_FILE_BYTES // 4 + 1))
    with pytest.raises(BadFile, match="binary data"):
        read_csv(b"Data;Descri\xc3\xa7\xc3\xa3o;Valor\n01/01/2020;\x00\x01;-1,00\n", MAPPING)
    with pytest.raises(BadFile, match="at most 10 MB"):
        read_ofx(b"OFXHEADER:100\n" + b" " * MAX_FILE_BYTES)


def test_too_many_rows_or_too_long_a_text_is_refused_with_a_reason():
    many = "Data;Descrição;Valor\n" + "01/01/2020;x;-1,00\n" * (MAX_ROWS + 1)
    with pytest.raises(BadFile, match=f"more than {MAX_ROWS:,} transactions"):
        read_csv(many.encode(), MAPPING)
    long = f"Data;Descrição;Valor\n01/01/2020;{'x' * (MAX_TEXT + 1)};-1,00\n"
    with pytest.raises(BadFile, match=f"at most {MAX_TEXT}") as caught:
        read_csv(long.encode(), MAPPING)
    assert (caught.value.line, caught.value.column) == (2, "Descrição")
    huge = f"Data;Descrição;Valor\n01/01/2020;\"{'x' * 200_000}\";-1,00\n"
    with pytest.raises(BadFile, match="Line 2"):
        read_csv(huge.encode(), MAPPING)


def test_ofx_entities_are_never_expanded():
    data = (FIXTURES / "card.ofx").read_bytes()
    evil = data.replace(b"<OFX>", b'<!DOCTYPE OFX [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>\n'
                                  b"<OFX>", 1).replace(b"PAYMENT THANK YOU", b"&b;")
    rows = read_ofx(evil).rows
    assert [r.description for r in rows][1] == "&b;"
    assert rows[1].booked_date == date(2024, 1, 6)
