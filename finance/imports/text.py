"""What the CSV and OFX readers share: the row they produce, the limits on a file, and the parsing of its text,
amounts and dates, each refusing with a `BadFile` that says where and why."""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from finance.errors import BadFile
from finance.i18n import _

MAX_FILE_BYTES = 10 * 1024 * 1024
"""A decade of a busy account's statements is a few MB; anything bigger is not a bank export."""
MAX_ROWS = 50_000
MAX_TEXT = 500
"""Longest description kept: a bank's text is short; longer cells are refused, not cut, so nothing changes unseen."""
MAX_AMOUNT = Decimal("1e15")
CENT = Decimal("0.01")
ENCODINGS = ("utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16")
"""The encodings offered; bank exports are UTF-8 (often with a BOM) or Windows-1252/Latin-1 (Brazilian banks)."""
DATE_FORMATS = ("%d/%m/%Y", "%d/%m/%y", "%m/%d/%Y", "%m/%d/%y", "%Y-%m-%d", "%d.%m.%Y", "%d-%m-%Y", "%Y/%m/%d",
                "%Y%m%d")
_CURRENCY_MARKS = re.compile(r"(R\$|US\$|\$|€|£|BRL|USD|EUR)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FileRow:
    """One transaction as the file states it: `line` is where it is (1-based), `external_id` the bank's own id
    (OFX FITID, or a CSV id column), when it gives one. `amount` is signed: negative means money leaves."""

    line: int
    booked_date: date
    amount: Decimal
    description: str
    external_id: str | None = None
    balance: Decimal | None = None


def check_size(data: bytes) -> None:
    """Refuse a file over MAX_FILE_BYTES or one that is not text, before reading it."""
    if len(data) > MAX_FILE_BYTES:
        raise BadFile(_("The file is {size} MB; at most {limit} MB can be imported at once. Export a shorter period, "
                        "or split the file.").format(size=f"{len(data) / 1_048_576:.1f}",
                                                     limit=MAX_FILE_BYTES // 1_048_576))
    if not data.strip():
        raise BadFile(_("The file is empty."))


def detect_encoding(data: bytes) -> str:
    """The encoding a bank export most likely uses: its BOM, else UTF-8 when it decodes, else Windows-1252 (the
    Latin-1 superset Brazilian banks write), else Latin-1 (which reads any byte)."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "cp1252"):
        try:
            data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    return "latin-1"


def decode(data: bytes, encoding: str) -> str:
    """The file's text in `encoding` (a UTF-8 BOM is dropped); an undecodable byte names its line."""
    if encoding not in ENCODINGS:
        raise BadFile(_("Unknown encoding {encoding}; choose one of {choices}.").format(
            encoding=repr(encoding), choices=", ".join(ENCODINGS)))
    if encoding == "utf-8" and data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise BadFile(_("byte {byte} is not {encoding} text; choose another encoding (Brazilian banks often use "
                        "cp1252 or latin-1).").format(byte=f"0x{data[exc.start]:02x}", encoding=encoding),
                      line=line) from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise BadFile(_("the file holds binary data (a NUL character): it is not a CSV or OFX export."), line=line)
    return text


def clean_text(value: str, *, line: int, column: str | None = None) -> str:
    """A description as stored: control characters out, whitespace collapsed; over MAX_TEXT is refused."""
    text = " ".join("".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in value).split())
    if len(text) > MAX_TEXT:
        raise BadFile(_("the text is {length} characters long; at most {limit} are accepted.").format(
            length=len(text), limit=MAX_TEXT), line=line, column=column)
    return text


def parse_amount(value: str, decimal: str, *, line: int, column: str | None = None) -> Decimal:
    """A bank's amount: `decimal` is its decimal separator ("," or "."), the other one groups thousands.
    Accepts currency marks, a leading or trailing sign, (parentheses) and a trailing D (debit) or C (credit).
    More than two decimals is refused: it means the separator chosen is not the file's."""
    if decimal not in (",", "."):
        raise BadFile(_("The decimal separator must be “,” or “.”."))
    text = _CURRENCY_MARKS.sub("", value).replace("\u00a0", "").replace(" ", "").strip()
    negative = False
    if text[-1:].upper() in ("D", "C") and len(text) > 1 and text[-2].isdigit():
        negative, text = text[-1].upper() == "D", text[:-1]
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1]
    if text.endswith("-"):
        negative, text = not negative, text[:-1]
    if text.startswith(("-", "+")):
        negative, text = (not negative) if text[0] == "-" else negative, text[1:]
    group = "." if decimal == "," else ","
    pattern = rf"(\d{{1,3}}(\{group}\d{{3}})+|\d+)(\{decimal}\d+)?"
    if not re.fullmatch(pattern, text):
        raise BadFile(_("{value} is not an amount with “{decimal}” as the decimal separator.").format(
            value=repr(value.strip()[:40]), decimal=decimal), line=line, column=column)
    whole, _sep, cents = text.replace(group, "").partition(decimal)
    if len(cents) > 2:
        raise BadFile(_("{value} has more than two decimals: is the decimal separator “{group}” rather than "
                        "“{decimal}”?").format(value=repr(value.strip()[:40]), group=group, decimal=decimal),
                      line=line, column=column)
    try:
        amount = Decimal(f"{whole}.{cents or '0'}").quantize(CENT)
    except InvalidOperation:  # pragma: no cover - the pattern admits digits only
        raise BadFile(_("{value} is not an amount.").format(value=repr(value)), line=line, column=column) from None
    if amount >= MAX_AMOUNT:
        raise BadFile(_("{value} is too large to be a transaction.").format(value=repr(value.strip()[:40])),
                      line=line, column=column)
    return -amount if negative else amount


_DATE_PARTS = {"%d": r"(?P<d>\d{1,2})", "%m": r"(?P<m>\d{1,2})", "%Y": r"(?P<Y>\d{4})", "%y": r"(?P<y>\d{2})"}


def _date_pattern(date_format: str) -> re.Pattern[str]:
    """The format as a regex; without separators (%Y%m%d) day and month take two digits each."""
    compact = not re.sub(r"%[dmYy]", "", date_format)
    return re.compile(re.sub(r"%[dmYy]|.", lambda m: (
        _DATE_PARTS[m.group()].replace("{1,2}", "{2}") if compact else _DATE_PARTS[m.group()])
        if m.group() in _DATE_PARTS else re.escape(m.group()), date_format))


_DATE_PATTERNS = {date_format: _date_pattern(date_format) for date_format in DATE_FORMATS}
"""Each format as a regex (strptime costs ~50 µs a call, a third of reading a big file)."""


def parse_date(value: str, date_format: str, *, line: int, column: str | None = None) -> date:
    """A date in `date_format` (one of DATE_FORMATS; a two-digit year is 1969–2068, as strptime reads it)."""
    pattern = _DATE_PATTERNS.get(date_format)
    if pattern is None:
        raise BadFile(_("Unknown date format {format}; choose one of {choices}.").format(
            format=repr(date_format), choices=", ".join(DATE_FORMATS)))
    found = pattern.fullmatch(value.strip())
    try:
        if found is None:
            raise ValueError(value)
        parts = found.groupdict()
        year = int(parts["Y"]) if parts.get("Y") else 2000 + int(parts["y"]) - (100 if int(parts["y"]) >= 69 else 0)
        return date(year, int(parts["m"]), int(parts["d"]))
    except ValueError:
        raise BadFile(_("{value} is not a date in the format {format}.").format(
            value=repr(value.strip()[:40]), format=date_format), line=line, column=column) from None



def normalise(text: str | None) -> str:
    """Text compared across sources: lower case, accents off, letters and digits only, single spaces."""
    plain = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


def row_keys(rows: list[FileRow]) -> list[str]:
    """A stable key per row for telling a re-import from new rows: the bank's id when it gives one, else the
    date, amount and text with the row's occurrence number among identical rows of the file (two real identical
    purchases on one day stay two rows; the same file read again gives the same keys)."""
    seen: dict[tuple[date, Decimal, str], int] = {}
    keys = []
    for row in rows:
        if row.external_id:
            keys.append(f"id:{row.external_id}")
            continue
        fingerprint = (row.booked_date, row.amount, normalise(row.description))
        seen[fingerprint] = seen.get(fingerprint, 0) + 1
        digest = hashlib.sha256(repr((*fingerprint, seen[fingerprint])).encode()).hexdigest()[:24]
        keys.append(f"fp:{digest}")
    return keys
