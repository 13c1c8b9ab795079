"""A bank's CSV export read through a column mapping the user confirms once per account (and that is saved).

`sniff` finds the encoding, the delimiter, the header row (after any preamble lines a bank puts first) and a few
sample rows; `guess_mapping` proposes which column is what and how dates and amounts are written, from the header
names Brazilian and US banks use ("Data;Descrição;Valor" with 1.234,56, or "Date,Description,Amount" with
1,234.56); `read_csv` reads every row through the confirmed mapping, or raises `BadFile` at the first bad one.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal
from typing import Any

from finance.errors import BadFile
from finance.i18n import _
from finance.imports.text import (
    DATE_FORMATS,
    MAX_ROWS,
    FileRow,
    check_size,
    clean_text,
    decode,
    detect_encoding,
    normalise,
    parse_amount,
    parse_date,
)

DELIMITERS = (";", ",", "\t", "|")
SAMPLE_ROWS = 8

_NAMES: dict[str, tuple[str, ...]] = {
    "date": ("data", "date", "data lancamento", "data do lancamento", "data movimento", "transaction date",
             "posting date", "posted date", "dt", "data mov"),
    "description": ("descricao", "description", "historico", "lancamento", "memo", "payee", "name", "detalhes",
                    "details", "estabelecimento", "titulo"),
    "amount": ("valor", "amount", "value", "valor r", "montante", "quantia", "transaction amount"),
    "debit": ("debito", "debit", "saida", "saidas", "withdrawal", "withdrawals", "debit amount"),
    "credit": ("credito", "credit", "entrada", "entradas", "deposit", "deposits", "credit amount"),
    "id": ("id", "transaction id", "documento", "n documento", "num documento", "numero documento", "fitid",
           "reference", "ref", "identificador"),
    "balance": ("saldo", "balance", "running balance", "saldo r"),
}


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which header is what, and how the bank writes dates and amounts. Either `amount` (signed; `negate` when the
    bank shows spending as positive) or `debit`/`credit` (each unsigned: a debit leaves, a credit arrives)."""

    date: str = ""
    description: str = ""
    amount: str | None = None
    debit: str | None = None
    credit: str | None = None
    id: str | None = None
    balance: str | None = None
    date_format: str = "%d/%m/%Y"
    decimal: str = ","
    delimiter: str = ";"
    encoding: str = "utf-8"
    negate: bool = False

    def check(self, headers: list[str]) -> None:
        """Refuse a mapping that is incomplete or names a column the file lacks."""
        if not self.date or not self.description:
            raise BadFile(_("Choose the date and the description columns."))
        if not self.amount and not (self.debit or self.credit):
            raise BadFile(_("Choose the amount column, or the debit and credit columns."))
        if self.amount and (self.debit or self.credit):
            raise BadFile(_("Choose either one amount column or debit/credit columns, not both."))
        if self.delimiter not in DELIMITERS:
            raise BadFile(_("The delimiter must be one of {choices}.").format(
                choices=" ".join(repr(d) for d in DELIMITERS)))
        if self.date_format not in DATE_FORMATS:
            raise BadFile(_("Unknown date format {format}.").format(format=repr(self.date_format)))
        missing = [c for c in self.columns() if c not in headers]
        if missing:
            raise BadFile(_("The file has no column {missing} (its columns: {columns}).").format(
                missing=", ".join(repr(c) for c in missing), columns=", ".join(headers)[:300]))

    def columns(self) -> list[str]:
        """The headers this mapping reads."""
        return [c for c in (self.date, self.description, self.amount, self.debit, self.credit, self.id,
                            self.balance) if c]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ColumnMapping:
        """A saved mapping; unknown keys (from a newer version) are ignored."""
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What a first look at the file found: its encoding, delimiter, header row and first rows."""

    encoding: str
    delimiter: str
    header_line: int
    headers: list[str]
    samples: list[list[str]]


def _records(text: str, delimiter: str) -> csv.reader:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the same number (more than one) of fields most often."""
    lines = [line for line in text.splitlines()[:30] if line.strip()]
    best, score = ";", 0
    for delimiter in DELIMITERS:
        counts = Counter(len(row) for row in _records("\n".join(lines), delimiter) if row)
        width, times = counts.most_common(1)[0] if counts else (1, 0)
        if width > 1 and times > score:
            best, score = delimiter, times
    return best


def _header_index(rows: list[list[str]], wanted: list[str] | None = None) -> int:
    """The header row: the first holding every `wanted` name, else the first as wide as the file's usual row."""
    if wanted:
        for i, row in enumerate(rows):
            if all(name in [cell.strip() for cell in row] for name in wanted):
                return i
        return -1
    widths = Counter(len(row) for row in rows if any(cell.strip() for cell in row))
    width = widths.most_common(1)[0][0] if widths else 0
    return next((i for i, row in enumerate(rows) if len(row) == width), 0)


def sniff(data: bytes, *, encoding: str | None = None, delimiter: str | None = None) -> Sniffed:
    """A first look at a CSV file (encoding and delimiter found unless given)."""
    check_size(data)
    encoding = encoding or detect_encoding(data)
    text = decode(data, encoding)
    delimiter = delimiter or _sniff_delimiter(text)
    head: list[list[str]] = []
    try:
        for row in _records(text, delimiter):
            head.append(row)
            if len(head) >= 40:
                break
    except csv.Error as exc:
        raise BadFile(_("the CSV is malformed ({error}).").format(error=exc), line=len(head) + 1) from None
    index = _header_index(head)
    headers = [cell.strip() for cell in head[index]] if head else []
    if len(headers) < 2:
        raise BadFile(_("No columns found: the file does not look like a CSV export (try another delimiter)."))
    samples = [row for row in head[index + 1:] if any(cell.strip() for cell in row)][:SAMPLE_ROWS]
    return Sniffed(encoding, delimiter, index + 1, headers, samples)


def _find(headers: list[str], field: str, taken: set[str]) -> str | None:
    names = _NAMES[field]
    plain = {h: normalise(h) for h in headers if h not in taken}
    for h, n in plain.items():
        if n in names:
            return h
    for h, n in plain.items():
        if any(n.startswith(name + " ") for name in names):
            return h
    return None


def _guess_decimal(values: list[str]) -> str:
    votes = Counter()
    for value in values:
        digits = value.strip().rstrip("DCdc -")
        for mark in (",", "."):
            head, sep, tail = digits.rpartition(mark)
            if sep and head and tail.isdigit() and len(tail) <= 2:
                votes[mark] += 1
    return votes.most_common(1)[0][0] if votes else ","


def guess_mapping(sniffed: Sniffed) -> ColumnMapping:
    """A proposal from the header names and the sample rows; columns it cannot place are left empty."""
    taken: set[str] = set()
    found: dict[str, str | None] = {}
    for field in ("date", "description", "debit", "credit", "amount", "id", "balance"):
        found[field] = _find(sniffed.headers, field, taken)
        if found[field]:
            taken.add(found[field] or "")
    if found["amount"] and (found["debit"] or found["credit"]):
        found["debit"] = found["credit"] = None
    index = {h: i for i, h in enumerate(sniffed.headers)}

    def column(name: str | None) -> list[str]:
        return [row[index[name]] for row in sniffed.samples if name and index[name] < len(row) and
                row[index[name]].strip()]

    decimal = _guess_decimal(column(found["amount"]) + column(found["debit"]) + column(found["credit"]))
    order = list(DATE_FORMATS)
    if decimal == ".":  # 1,234.56 is a US file: month first
        order.sort(key=lambda f: not f.startswith("%m"))
    dates = column(found["date"])
    date_format = next((f for f in order if dates and all(_parses(d, f) for d in dates)), order[0])
    return ColumnMapping(date=found["date"] or "", description=found["description"] or "", amount=found["amount"],
                         debit=found["debit"], credit=found["credit"], id=found["id"], balance=found["balance"],
                         date_format=date_format, decimal=decimal, delimiter=sniffed.delimiter,
                         encoding=sniffed.encoding)


def _parses(value: str, date_format: str) -> bool:
    try:
        parse_date(value, date_format, line=0)
    except BadFile:
        return False
    return True


def read_csv(data: bytes, mapping: ColumnMapping) -> list[FileRow]:
    """Every row of the file through `mapping`, or BadFile at the first row that does not read (its line and
    column named). Blank lines are skipped; lines before the header (a bank's preamble) are ignored."""
    check_size(data)
    mapping.check(mapping.columns())  # complete and well-formed, before the file is read
    text = decode(data, mapping.encoding)
    reader = _records(text, mapping.delimiter)
    rows: list[FileRow] = []
    headers: list[str] | None = None
    position: dict[str, int] = {}
    line = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise BadFile(_("the CSV is malformed ({error}).").format(error=exc), line=line) from None
        start, line = line, reader.line_num + 1
        if headers is None:
            if _header_index([record], [mapping.date, mapping.description]) == 0:
                headers = [cell.strip() for cell in record]
                mapping.check(headers)
                position = {name: headers.index(name) for name in mapping.columns()}
            continue
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(headers):
            raise BadFile(_("the line has {count} fields, the header {header}.").format(
                count=len(record), header=len(headers)), line=start)
        rows.append(_row(record, position, mapping, start))
        if len(rows) > MAX_ROWS:
            raise BadFile(_("The file has more than {count} transactions; import a shorter period at a time.").format(
                count=f"{MAX_ROWS:,}"))
    if headers is None:
        raise BadFile(_("No header row with the columns {date} and {description} was found. Is this the same bank's "
                        "export, in the same encoding and delimiter?").format(
            date=repr(mapping.date), description=repr(mapping.description)))
    if not rows:
        raise BadFile(_("The file has a header but no transactions."))
    return rows


def _row(record: list[str], position: dict[str, int], mapping: ColumnMapping, line: int) -> FileRow:
    def cell(name: str | None) -> str:
        return record[position[name]].strip() if name else ""

    booked = parse_date(cell(mapping.date), mapping.date_format, line=line, column=mapping.date)
    description = clean_text(cell(mapping.description), line=line, column=mapping.description)
    if not description:
        raise BadFile(_("the description is empty."), line=line, column=mapping.description)
    if mapping.amount:
        if not cell(mapping.amount):
            raise BadFile(_("the amount is empty."), line=line, column=mapping.amount)
        amount = parse_amount(cell(mapping.amount), mapping.decimal, line=line, column=mapping.amount)
        amount = -amount if mapping.negate else amount
    else:
        debit, credit = cell(mapping.debit), cell(mapping.credit)
        if not debit and not credit:
            raise BadFile(_("both the debit and the credit are empty."), line=line,

                          column=mapping.debit or mapping.credit)
        amount = Decimal("0.00")
        if debit:
            amount -= abs(parse_amount(debit, mapping.decimal, line=line, column=mapping.debit))
        if credit:
            amount += abs(parse_amount(credit, mapping.decimal, line=line, column=mapping.credit))
    balance = (parse_amount(cell(mapping.balance), mapping.decimal, line=line, column=mapping.balance)
               if cell(mapping.balance) else None)
    external = clean_text(cell(mapping.id), line=line, column=mapping.id) or None
    return FileRow(line, booked, amount, description, external, balance)


def with_overrides(mapping: ColumnMapping, **changes: Any) -> ColumnMapping:
    """`mapping` with some fields changed (the page's widgets), empty choices read as None."""
    optional = {"amount", "debit", "credit", "id", "balance"}
    return replace(mapping, **{k: (v or None) if k in optional else v for k, v in changes.items()})
