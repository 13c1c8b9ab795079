"""OFX statements (1.x SGML and 2.x XML), read with ofxtools: its parser copes with SGML's unclosed tags and both
headers, and its models check every element against the OFX specification, so a file it accepts is well formed.

The rows come from the parsed elements, not the converted models: ofxtools turns DTPOSTED into UTC, while the
booked date is the calendar day the bank wrote (a 23:00 purchase at UTC-3 belongs to that day, not the next).
"""

from __future__ import annotations

import html
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from finance.errors import BadFile
from finance.i18n import _
from finance.imports.text import MAX_ROWS, FileRow, check_size, clean_text, parse_amount, parse_date

STATEMENTS = ("STMTRS", "CCSTMTRS")
_BAD_VALUE = re.compile(r"Can't set (\w+)\.(\w+) to (.*?): ", re.DOTALL)


@dataclass(frozen=True, slots=True)
class OfxStatement:
    """One account's statement: its currency, the bank's account number, the ledger balance and its rows."""

    currency: str
    account_number: str
    balance: Decimal | None
    balance_date: date | None
    rows: list[FileRow]


def _line_of(text: str, needle: str) -> int | None:
    at = text.find(needle)
    return text[:at].count("\n") + 1 if at >= 0 else None


def _text(element: ET.Element, tag: str) -> str:
    """An element's text with character references decoded (ofxtools leaves `&amp;` in OFX 2 files as is)."""
    found = element.find(tag)
    return html.unescape(found.text or "").strip() if found is not None else ""


def read_ofx(data: bytes) -> OfxStatement:
    """The file's one statement, or BadFile saying what is wrong (and where, when the problem is a value)."""
    check_size(data)
    from ofxtools.Parser import OFXTree  # here: importing ofxtools takes 0.4 s, which every command would pay

    text = data.decode("latin-1")  # only to find lines; ofxtools decodes by the file's own header
    tree = OFXTree()
    try:
        tree.parse(io.BytesIO(data))
    except Exception as exc:  # ofxtools raises several types (header, SGML, XML errors); all mean "not OFX"
        raise BadFile(_("This is not an OFX file ofxtools can read: {error}").format(error=str(exc)[:200])) from None
    root = tree.getroot()
    statements = [e for e in root.iter() if e.tag in STATEMENTS]
    if len(statements) != 1:
        raise BadFile(_("The file holds {count} account statements; export one account per file.").format(
            count=len(statements)) if statements else _("The file holds no bank or card statement."))
    statement = statements[0]
    tags = [m.start() for m in re.finditer(r"<STMTTRN>", text, re.IGNORECASE)]
    rows = []
    for index, element in enumerate(statement.iter("STMTTRN")):
        line = text[:tags[index]].count("\n") + 1 if index < len(tags) else 0
        rows.append(_row(element, line))
        if len(rows) > MAX_ROWS:
            raise BadFile(_("The file has more than {count} transactions; import a shorter period at a time.").format(
                count=f"{MAX_ROWS:,}"))
    if not rows:
        raise BadFile(_("The statement has no transactions."))
    try:  # the rows read; now the whole file against the OFX specification
        tree.convert()
    except Exception as exc:
        message = str(exc)
        found = _BAD_VALUE.search(message)
        line = None
        if found:
            line = _line_of(text, f"<{found.group(2).upper()}>{found.group(3)}") or _line_of(text, found.group(3))
            message = _("<{field}> of <{element}> is {value}.").format(
                field=found.group(2).upper(), element=found.group(1), value=repr(found.group(3)[:40]))
        raise BadFile(_("The file is not valid OFX: {message}").format(message=message[:300]), line=line) from None

    balance = statement.find("LEDGERBAL")
    account = next((e for e in statement if e.tag in ("BANKACCTFROM", "CCACCTFROM")), None)
    return OfxStatement(
        currency=_text(statement, "CURDEF").upper(),
        account_number=_text(account, "ACCTID") if account is not None else "",
        balance=parse_amount(_text(balance, "BALAMT"), ".", line=0) if balance is not None else None,
        balance_date=parse_date(_text(balance, "DTASOF")[:8], "%Y%m%d", line=0) if balance is not None else None,
        rows=rows)


def _row(element: ET.Element, line: int) -> FileRow:
    amount_text = _text(element, "TRNAMT").replace(",", ".")  # OFX allows a comma as the decimal mark
    amount = parse_amount(amount_text, ".", line=line, column="TRNAMT")
    booked = parse_date(_text(element, "DTPOSTED")[:8], "%Y%m%d", line=line, column="DTPOSTED")
    payee = element.find("PAYEE")
    name = _text(element, "NAME") or (_text(payee, "NAME") if payee is not None else "")
    memo = _text(element, "MEMO")
    description = name if not memo or memo in name else (f"{name} – {memo}" if name else memo)
    description = clean_text(description, line=line, column="NAME")
    if not description:
        description = _text(element, "TRNTYPE").title() or "Transaction"
    fitid = clean_text(_text(element, "FITID"), line=line, column="FITID") or None
    return FileRow(line, booked, amount, description, fitid)
