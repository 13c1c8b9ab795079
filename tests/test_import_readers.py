"""The file readers (pure): Brazilian and US CSVs through a guessed mapping, every way of writing an amount, OFX 1.x
SGML and 2.x XML, and every bad file refused with its line and column. Property tests: any amount written the
Brazilian or the US way reads back exactly; row keys are stable and tell identical rows apart."""

from __future__ import annotations

import codecs
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finance.errors import BadFile
from finance.imports.csv_reader import ColumnMapping, guess_mapping, read_csv, sniff
from finance.imports.ofx_reader import read_ofx
from finance.imports.text import DATE_FORMATS, FileRow, detect_encoding, parse_amount, parse_date, row_keys

FIXTURES = Path(__file__).parent / "fixtures" / "imports"

BRAZILIAN = ("Banco Exemplo S.A. - Extrato\nAgência: 0001;Conta: 12345-6\n\n"
             "Data;Descrição;Documento;Valor (R$);Saldo (R$)\n"
             "02/01/2024;PIX RECEBIDO - MARIA;1001;1.500,00;2.500,00\n"
             "03/01/2024;COMPRA CARTÃO PADARIA SÃO JOÃO;1002;-23,90;2.476,10\n"
             "\n"
             "05/01/2024;BOLETO ENERGIA;1003;-1.234,56;1.241,54\n")
US = ('Transaction Date,Description,Debit,Credit,Balance\n'
      '01/15/2024,"COFFEE SHOP, INC",4.50,,995.50\n'
      '01/16/2024,PAYROLL ACME,,"1,200.00","2,195.50"\n'
      '12/31/2023,ATM WITHDRAWAL,100.00,,1000.00\n')


def read(text: str | bytes, **changes: object) -> list[FileRow]:
    data = text.encode() if isinstance(text, str) else text
    return read_csv(data, replace(guess_mapping(sniff(data)), **changes))


def test_a_brazilian_export_in_windows_1252_after_a_preamble():
    data = BRAZILIAN.encode("cp1252")
    sniffed = sniff(data)
    assert (sniffed.encoding, sniffed.delimiter, sniffed.header_line) == ("cp1252", ";", 4)
    mapping = guess_mapping(sniffed)
    assert (mapping.date, mapping.description, mapping.amount, mapping.id, mapping.balance) == (
        "Data", "Descrição", "Valor (R$)", "Documento", "Saldo (R$)")
    assert (mapping.date_format, mapping.decimal) == ("%d/%m/%Y", ",")
    rows = read_csv(data, mapping)
    assert [(r.line, r.booked_date, r.amount, r.description, r.external_id, r.balance) for r in rows] == [
        (5, date(2024, 1, 2), Decimal("1500.00"), "PIX RECEBIDO - MARIA", "1001", Decimal("2500.00")),
        (6, date(2024, 1, 3), Decimal("-23.90"), "COMPRA CARTÃO PADARIA SÃO JOÃO", "1002", Decimal("2476.10")),
        (8, date(2024, 1, 5), Decimal("-1234.56"), "BOLETO ENERGIA", "1003", Decimal("1241.54")),
    ]


def test_a_us_export_with_debit_and_credit_columns_and_a_utf8_bom():
    data = codecs.BOM_UTF8 + US.encode()
    mapping = guess_mapping(sniff(data))
    assert (mapping.date, mapping.debit, mapping.credit, mapping.amount) == (
        "Transaction Date", "Debit", "Credit", None)
    assert (mapping.date_format, mapping.decimal, mapping.delimiter, mapping.encoding) == (
        "%m/%d/%Y", ".", ",", "utf-8-sig")
    rows = read_csv(data, mapping)
    assert [(r.booked_date, r.amount, r.description) for r in rows] == [
        (date(2024, 1, 15), Decimal("-4.50"), "COFFEE SHOP, INC"),
        (date(2024, 1, 16), Decimal("1200.00"), "PAYROLL ACME"),
        (date(2023, 12, 31), Decimal("-100.00"), "ATM WITHDRAWAL"),
    ]


def test_a_card_export_that_shows_spending_as_positive_is_negated():
    rows = read("Date,Description,Amount\n2024-02-01,NETFLIX,55.90\n2024-02-03,REFUND,-10.00\n", negate=True)
    assert [r.amount for r in rows] == [Decimal("-55.90"), Decimal("10.00")]


def test_the_mapping_round_trips_through_json_and_ignores_unknown_keys():
    mapping = guess_mapping(sniff(BRAZILIAN.encode()))
    assert ColumnMapping.from_json(mapping.to_json()) == mapping
    assert ColumnMapping.from_json('{"date": "Data", "future_option": 1}').date == "Data"


@pytest.mark.parametrize(("text", "decimal", "expected"), [
    ("1.234,56", ",", "1234.56"), ("-1.234,56", ",", "-1234.56"), ("R$ 1.234,56", ",", "1234.56"),
    ("1234,5", ",", "1234.50"), ("12,34-", ",", "-12.34"), ("12,34 D", ",", "-12.34"), ("12,34 C", ",", "12.34"),
    ("1,234.56", ".", "1234.56"), ("$1,234.56", ".", "1234.56"), ("(42.10)", ".", "-42.10"), ("+7", ".", "7.00"),
    ("1\u00a0234,56", ",", "1234.56"), ("US$ -0.99", ".", "-0.99"),
])
def test_amounts_as_banks_write_them(text: str, decimal: str, expected: str):
    assert parse_amount(text, decimal, line=1) == Decimal(expected)


@pytest.mark.parametrize(("text", "decimal", "says"), [
    ("1,234.56", ",", "is not an amount"),  # a US amount read as Brazilian
    ("1.234", ".", "more than two decimals"),  # a Brazilian thousand read as US: refused, not 1.234
    ("12a", ",", "is not an amount"), ("", ",", "is not an amount"), ("1" * 20, ".", "too large"),
])
def test_amounts_that_cannot_be_read_as_asked_are_refused(text: str, decimal: str, says: str):
    with pytest.raises(BadFile, match=says):
        parse_amount(text, decimal, line=7, column="Valor")


@given(st.decimals(min_value=Decimal("-999999999.99"), max_value=Decimal("999999999.99"), places=2))
def test_any_amount_written_the_brazilian_or_the_us_way_reads_back(amount: Decimal):
    us = f"{amount:,.2f}"
    brazilian = us.replace(",", "_").replace(".", ",").replace("_", ".")
    assert parse_amount(us, ".", line=1) == amount
    assert parse_amount(brazilian, ",", line=1) == amount


@given(st.lists(st.tuples(st.dates(), st.integers(-10_000, 10_000), st.sampled_from(["A", "B", "a", "PIX X"])),
                max_size=30))
def test_row_keys_are_stable_and_tell_identical_rows_apart(specs: list[tuple[date, int, str]]):
    rows = [FileRow(i + 1, d, Decimal(c) / 100, text) for i, (d, c, text) in enumerate(specs)]
    keys = row_keys(rows)
    assert keys == row_keys(list(rows))  # the same file read again: the same keys
    assert len(set(keys)) == len(keys)  # two identical purchases stay two rows
    assert row_keys(rows[: len(rows) // 2]) == keys[: len(rows) // 2]  # an earlier, shorter export: a prefix


@pytest.mark.parametrize(("content", "line", "column", "says"), [
    ("Data;Descrição;Valor\n01/02/2024;A;-1,00\n32/01/2024;B;-2,00\n", 3, "Data", "not a date"),
    ("Data;Descrição;Valor\n01/02/2024;A;-1,00\n02/02/2024;B;abc\n", 3, "Valor", "not an amount"),
    ("Data;Descrição;Valor\n01/02/2024;A;-1,00\n02/02/2024;B\n", 3, None, "2 fields, the header 3"),
    ("Data;Descrição;Valor\n01/02/2024;;-1,00\n", 2, "Descrição", "description is empty"),
    ("Data;Descrição;Valor\n01/02/2024;A;\n", 2, "Valor", "amount is empty"),
    # an unclosed quote swallows the rest of the file into one record, which then has too few fields
    ('Data;Descrição;Valor\n01/02/2024;"A\n02/02/2024;B;-1,00\n', 2, None, "2 fields, the header 3"),
])
def test_a_bad_line_is_named(content: str, line: int, column: str | None, says: str):
    mapping = ColumnMapping(date="Data", description="Descrição", amount="Valor")
    with pytest.raises(BadFile, match=says) as caught:
        read_csv(content.encode(), mapping)
    assert caught.value.line == line and str(caught.value).startswith(f"Line {line}")
    assert caught.value.column == column


def test_a_mapping_that_does_not_fit_the_file_says_what_is_missing():
    with pytest.raises(BadFile, match="No header row"):
        read_csv(b"Date,Description,Amount\n2024-01-01,A,1.00\n", ColumnMapping(date="Data", description="Descr",
                                                                               amount="Valor"))
    with pytest.raises(BadFile, match="no column 'Valor'"):
        read_csv(b"Data;Descr;Amount\n01/01/2024;A;1,00\n", ColumnMapping(date="Data", description="Descr",
                                                                         amount="Valor"))
    with pytest.raises(BadFile, match="either one amount column or debit/credit"):
        read_csv(b"x", ColumnMapping(date="D", description="E", amount="A", debit="B"))


def test_an_undecodable_byte_names_its_line():
    data = "Data;Descrição;Valor\n01/02/2024;A;-1,00\n".encode() + b"02/02/2024;\xff\xfe;-1,00\n"
    assert detect_encoding(data) == "cp1252"
    with pytest.raises(BadFile, match="not utf-8") as caught:
        read_csv(data, ColumnMapping(date="Data", description="Descrição", amount="Valor", encoding="utf-8"))
    assert caught.value.line == 3


def test_ofx_1_sgml_keeps_the_bank_s_calendar_day_and_its_ids():
    statement = read_ofx((FIXTURES / "itau.ofx").read_bytes())
    assert (statement.currency, statement.account_number, statement.balance) == ("BRL", "12345-6",
                                                                                 Decimal("3675.54"))
    assert [(r.booked_date, r.amount, r.description, r.external_id) for r in statement.rows] == [
        (date(2024, 1, 5), Decimal("-1234.56"), "PADARIA SÃO JOÃO", "20240105001"),
        (date(2024, 1, 10), Decimal("5000.00"), "SALARIO ACME", "20240110001"),
        # 23:30 at UTC-3 is the 31st where the bank is (ofxtools' UTC would say 1 February); comma decimal mark
        (date(2024, 1, 31), Decimal("-89.90"), "PIX ENVIADO – Fulano de Tal", "20240131001"),
    ]


def test_ofx_2_xml_card_statement():
    statement = read_ofx((FIXTURES / "card.ofx").read_bytes())
    assert statement.currency == "USD" and statement.balance == Decimal("-512.30")
    assert [(r.booked_date, r.amount, r.description, r.external_id) for r in statement.rows] == [
        (date(2024, 1, 5), Decimal("-42.10"), "COFFEE & CO – card 1234", "X1"),
        (date(2024, 1, 6), Decimal("100.00"), "PAYMENT THANK YOU", "X2"),
    ]


@pytest.mark.parametrize(("old", "new", "line", "says"), [
    (b"<TRNAMT>5000.00", b"<TRNAMT>5k", 17, "not an amount"),
    (b"<DTPOSTED>20240110", b"<DTPOSTED>2024x110", 17, "not a date|DTPOSTED"),
    (b"<CURDEF>BRL", b"<CURDEF>REAIS", 14, "CURDEF"),
])
def test_bad_ofx_values_are_named_with_their_line(old: bytes, new: bytes, line: int, says: str):
    data = (FIXTURES / "itau.ofx").read_bytes().replace(old, new)
    with pytest.raises(BadFile, match=says) as caught:
        read_ofx(data)
    assert caught.value.line == line


def test_files_that_are_not_ofx_are_refused():
    with pytest.raises(BadFile, match="not an OFX file"):
        read_ofx(b"Data;Valor\n01/01/2024;1,00\n")
    with pytest.raises(BadFile, match="empty"):
        read_ofx(b"   \n")


@given(st.dates(min_value=date(1969, 1, 1), max_value=date(2068, 12, 31)), st.sampled_from(DATE_FORMATS))
def test_dates_read_as_strptime_reads_them(day: date, date_format: str):
    text = day.strftime(date_format)
    assert parse_date(text, date_format, line=1) == datetime.strptime(text, date_format).date() == day
