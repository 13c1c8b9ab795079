"""`svc.imports`: file import as the Import files page and `python -m finance import` use it.

A file is read in full and placed against the store first (`preview`: nothing is written), the user decides the
ambiguous rows, then `commit` re-reads the store and writes the new rows, the batch and the saved column mapping in
one database transaction — or raises and writes nothing. `undo` removes exactly the rows one import added.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

import pandas as pd
import sqlalchemy as sa

from finance.errors import BadFile, EditError
from finance.formatting import format_money
from finance.i18n import _, format_short_day, ngettext
from finance.imports.csv_reader import ColumnMapping, Sniffed, guess_mapping, read_csv, sniff
from finance.imports.matching import Incoming, Placement, Verdict, place, similar
from finance.imports.ofx_reader import read_ofx
from finance.imports.text import FileRow, check_size, parse_amount, row_keys
from finance.model import AccountType
from finance.money import CURRENCY_CODE
from finance.store import imports as store
from finance.store import transactions

Decision = Literal["keep", "skip"]
MAX_NAME = 80


def file_kind(file_name: str, data: bytes) -> Literal["csv", "ofx"]:
    """OFX when the name says so or the file starts like one (an OFX header or an XML prolog), else CSV."""
    head = data[:400].lstrip(b"\xef\xbb\xbf \r\n\t").upper()
    if file_name.lower().endswith((".ofx", ".qfx")) or head.startswith((b"OFXHEADER", b"<?XML", b"<OFX")):
        return "ofx"
    return "csv"


@dataclass(frozen=True)
class Preview:
    """A file read and placed against the store, before anything is written."""

    account_id: str
    file_name: str
    kind: Literal["csv", "ofx"]
    sha256: str
    rows: list[FileRow]
    ids: list[str]  # the transaction id each row would get
    placements: list[Placement]
    mapping: ColumnMapping | None  # the CSV mapping used (saved for the account on commit)
    headers: list[str]
    balance: tuple[date, Decimal] | None = None  # the file's closing balance and its day, when it states one

    def counts(self) -> Counter[Verdict]:
        return Counter(p.verdict for p in self.placements)

    def ambiguous(self) -> list[str]:
        """The ids of the rows the user must decide on."""
        return [i for i, p in zip(self.ids, self.placements, strict=True) if p.verdict is Verdict.AMBIGUOUS]

    def table(self) -> pd.DataFrame:
        """One line per file row: what it says, what becomes of it and the stored row that decided it (text only;
        the page shows it in a dataframe, never as Markdown)."""
        return pd.DataFrame({
            "id": self.ids,
            "line": [r.line for r in self.rows],
            "date": [r.booked_date for r in self.rows],
            "description": [r.description for r in self.rows],
            "amount": [float(r.amount) for r in self.rows],
            "outcome": [p.verdict.value for p in self.placements],
            "matches": [f"{p.match.booked_date} · {p.match.description}" if p.match else "" for p in self.placements],
        })


class FileImports:
    """File import: read and place a file, commit it with the user's decisions, list and undo imports, and manual
    accounts for banks no aggregator reaches. Bad files raise BadFile, refused actions EditError; either way the
    store is unchanged."""

    def __init__(self, engine: sa.Engine, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._now = now

    def accounts(self) -> pd.DataFrame:
        """Accounts a file can go into (synced and manual), labelled."""
        with self._engine.connect() as conn:
            return transactions.account_options(conn)

    def create_account(self, name: str, currency: str, type_: str, balance: str = "", *, actor: str) -> str:
        """A manual account; returns its id. `balance`: today's balance, optional (it anchors the balance history)."""
        clean = " ".join(name.split())
        if not clean or len(clean) > MAX_NAME or any(not ch.isprintable() for ch in clean):
            raise EditError(_("Give the account a name of 1 to {limit} printable characters. Nothing was "
                              "changed.").format(limit=MAX_NAME))
        code = currency.strip().upper()
        if not CURRENCY_CODE.fullmatch(code):
            raise EditError(_("The currency must be a three-letter code like BRL or USD (got {value}). Nothing was "
                              "changed.").format(value=repr(currency[:10])))
        if type_ not in {t.value for t in AccountType}:
            raise EditError(_("Unknown account type {value}. Nothing was changed.").format(value=repr(type_[:20])))
        amount = None
        if balance.strip():  # 1.234,56 or 1,234.56: the last separator is the decimal one
            text = balance.strip()
            decimal = "," if text.rfind(",") > text.rfind(".") else "."
            try:
                amount = parse_amount(text, decimal, line=0)
            except BadFile as exc:
                raise EditError(_("The balance must be an amount like -1.234,56 or -1,234.56: {problem} Nothing was "
                                  "changed.").format(problem=exc.message)) from None
        with self._engine.begin() as conn:
            return store.create_manual_account(conn, name=clean, currency=code, type_=type_, actor=actor,
                                               now=self._now(), balance=amount)

    def kind(self, file_name: str, data: bytes) -> Literal["csv", "ofx"]:
        """How the file will be read: OFX by its name or first bytes, else CSV."""
        return file_kind(file_name, data)

    def sniff(self, data: bytes, *, encoding: str | None = None, delimiter: str | None = None) -> Sniffed:
        """A first look at a CSV file: encoding, delimiter, headers and sample rows."""
        return sniff(data, encoding=encoding, delimiter=delimiter)

    def mapping_for(self, account_id: str, sniffed: Sniffed) -> tuple[ColumnMapping, bool]:
        """The mapping to propose, and whether it is one saved before (for this account, or for the same bank's
        headers) rather than a guess."""
        with self._engine.connect() as conn:
            saved = store.saved_mapping(conn, account_id, sniffed.headers)
        if saved is not None:
            return ColumnMapping.from_json(saved), True
        return guess_mapping(sniffed), False

    def read(self, file_name: str, data: bytes, mapping: ColumnMapping | None = None) -> list[FileRow]:
        """Every row of the file (CSV through `mapping`), or BadFile naming the first bad line; nothing is stored."""
        return _load(file_name, data, mapping)[0]

    def preview(self, account_id: str, file_name: str, data: bytes, mapping: ColumnMapping | None = None) -> Preview:
        """Read the whole file (CSV through `mapping`; OFX needs none) and place every row against the store."""
        kind = file_kind(file_name, data)
        rows, currency, balance = _load(file_name, data, mapping)
        headers = sniff(data, encoding=mapping.encoding, delimiter=mapping.delimiter).headers if mapping else []
        with self._engine.connect() as conn:
            account = self._account(conn, account_id)
            if currency and currency != account.currency:
                raise BadFile(_("The file is in {currency}, the account “{account}” in {account_currency}: choose an "
                                "account in {currency}.").format(currency=currency, account=account.name,
                                                                 account_currency=account.currency))
            ids = [store.row_id(account_id, key) for key in row_keys(rows)]
            placements = self._place(conn, account_id, rows, ids)
        return Preview(account_id, file_name[:200], kind, hashlib.sha256(data).hexdigest(), rows, ids, placements,
                       mapping if kind == "csv" else None, headers, balance)

    def commit(self, preview: Preview, decisions: Mapping[str, Decision], *, actor: str) -> str:
        """Write the preview's new rows and the ambiguous ones the user kept, in one transaction; a sentence for
        the user. Refused (EditError, nothing written) while an ambiguous row has no decision, or when the store
        changed since the preview so that rows need a new look."""
        undecided = [i for i in preview.ambiguous() if decisions.get(i) not in ("keep", "skip")]
        if undecided:
            raise EditError(ngettext("{count} row looks like a transaction already stored: choose keep or skip for "
                                     "it. Nothing was imported.",
                                     "{count} rows look like transactions already stored: choose keep or skip for "
                                     "each. Nothing was imported.", len(undecided)).format(count=len(undecided)))
        now = self._now()
        with self._engine.begin() as conn:
            account = self._account(conn, preview.account_id)
            placements = self._place(conn, preview.account_id, preview.rows, preview.ids)
            if [p.verdict for p in placements] != [p.verdict for p in preview.placements]:
                raise EditError(_("The account's transactions changed since this preview (a sync or another import): "
                                  "review the file again. Nothing was imported."))
            keep = [(row, i) for row, i, p in zip(preview.rows, preview.ids, placements, strict=True)
                    if p.verdict is Verdict.NEW or (p.verdict is Verdict.AMBIGUOUS and decisions[i] == "keep")]
            counts = Counter(p.verdict for p in placements)
            kept = sum(1 for i in preview.ambiguous() if decisions[i] == "keep")
            if preview.mapping is not None:
                store.save_mapping(conn, preview.account_id, preview.headers, preview.mapping.to_json(), now)
            if not keep:
                return _("Nothing to import: all {count} rows of {file} are already in “{account}” "
                         "({summary}).").format(count=len(preview.rows), file=preview.file_name, account=account.name,
                                                summary=_summary(counts, kept))
            batch_id = uuid.uuid4().hex
            dates = [row.booked_date for row, _ in keep]
            store.save_import(conn, batch={
                "id": batch_id, "account_id": preview.account_id, "file_name": preview.file_name,
                "file_sha256": preview.sha256, "kind": preview.kind, "rows_in_file": len(preview.rows),
                "added": len(keep), "duplicates": counts[Verdict.DUPLICATE],
                "already_imported": counts[Verdict.ALREADY_IMPORTED], "ambiguous_kept": kept,
                "ambiguous_skipped": counts[Verdict.AMBIGUOUS] - kept, "first_date": min(dates),
                "last_date": max(dates),
            }, account_row=account, rows=[
                store.NewRow(i, k, row.booked_date, row.amount, row.description)
                for (row, i), k in zip(keep, _keys_of(preview, keep), strict=True)], actor=actor, now=now)
            balance = ""
            if preview.balance and account.provider == store.MANUAL_PROVIDER and account.current_balance is None:
                store.set_import_balance(conn, batch_id, preview.account_id, *preview.balance)
                balance = " " + _("Its balance is now {amount} as of {day}, from the file.").format(
                    amount=format_money(preview.balance[1], account.currency), day=format_short_day(preview.balance[0]))
            store.refresh_balance_history(conn, preview.account_id, now.date())
        return (_("Imported {added} of {count} rows into “{account}” ({summary}).").format(
            added=len(keep), count=len(preview.rows), account=account.name, summary=_summary(counts, kept))
            + balance + " " + _("It can be undone as a whole (import {batch}).").format(batch=batch_id))

    def undo(self, batch_id: str, *, actor: str) -> str:
        """Remove every row one import added, nothing else; a sentence for the user."""
        now = self._now()
        with self._engine.begin() as conn:
            account_id, removed = store.undo_import(conn, batch_id, actor=actor, now=now)
            store.refresh_balance_history(conn, account_id, now.date())
        return ngettext("Import undone: {count} row removed.", "Import undone: {count} rows removed.",
                        removed).format(count=removed)

    def overlaps(self) -> pd.DataFrame:
        """Imported rows that a later sync may have repeated under another description: the user decides (pairs
        with alike descriptions were already replaced by the sync)."""
        with self._engine.connect() as conn:
            rows = store.overlaps(conn)
        return pd.DataFrame([r._asdict() for r in rows if not similar(r.description, r.synced_description)],
                            columns=["id", "account_id", "booked_date", "amount", "currency", "description",
                                     "synced_id", "synced_date", "synced_description"])

    def keep_both(self, transaction_id: str, synced_id: str, *, actor: str) -> str:
        """The imported row and the synced one are two transactions: keep both, and stop asking."""
        with self._engine.begin() as conn:
            store.keep_both(conn, transaction_id, synced_id, actor=actor, now=self._now())
        return _("Both kept.")

    def remove_imported(self, transaction_id: str, *, actor: str) -> str:
        """The synced row repeats the imported one: remove the imported row (the provider's row wins)."""
        now = self._now()
        with self._engine.begin() as conn:
            account_id = store.remove_imported(conn, transaction_id, actor=actor, now=now)
            store.refresh_balance_history(conn, account_id, now.date())
        return _("The imported row was removed; the synced one stays.")

    def history(self) -> pd.DataFrame:
        """Every import, newest first."""
        with self._engine.connect() as conn:
            return store.import_history(conn)

    def _account(self, conn: sa.Connection, account_id: str) -> sa.Row:
        row = store.account(conn, account_id)
        if row is None:
            raise EditError(_("There is no such account. Nothing was changed."))
        return row

    def _place(self, conn: sa.Connection, account_id: str, rows: list[FileRow], ids: list[str]) -> list[Placement]:
        start = min((r.booked_date for r in rows), default=date.today())
        end = max((r.booked_date for r in rows), default=date.today())
        stored = store.stored_rows(conn, account_id, start, end, ids)
        return place([Incoming(i, r.booked_date, r.amount, r.description) for r, i in zip(rows, ids, strict=True)],
                     stored)


def _load(file_name: str, data: bytes, mapping: ColumnMapping | None
          ) -> tuple[list[FileRow], str | None, tuple[date, Decimal] | None]:
    """The file's rows, its currency (OFX states one) and its closing balance with its day: OFX's ledger balance,
    or a CSV's balance column on its last day when one row alone is on that day (else which is last is unknown)."""
    check_size(data)
    if file_kind(file_name, data) == "ofx":
        statement = read_ofx(data)
        closing = ((statement.balance_date, statement.balance)
                   if statement.balance is not None and statement.balance_date else None)
        return statement.rows, statement.currency or None, closing
    if mapping is None:
        raise BadFile(_("Map the CSV's columns first."))
    rows = read_csv(data, mapping)
    last = max(row.booked_date for row in rows)
    on_last = [row for row in rows if row.booked_date == last]
    closing = (last, on_last[0].balance) if len(on_last) == 1 and on_last[0].balance is not None else None
    return rows, None, closing


def _keys_of(preview: Preview, keep: list[tuple[FileRow, str]]) -> list[str]:
    """The file keys (external ids) of the kept rows."""
    key_of = dict(zip(preview.ids, row_keys(preview.rows), strict=True))
    return [key_of[i] for _, i in keep]


def _summary(counts: Counter[Verdict], kept: int) -> str:
    parts = [_("{count} already synced").format(count=counts[Verdict.DUPLICATE]),
             _("{count} imported before").format(count=counts[Verdict.ALREADY_IMPORTED])]
    if counts[Verdict.AMBIGUOUS]:
        parts.append(_("{kept} of {count} possible duplicates kept").format(kept=kept,
                                                                          count=counts[Verdict.AMBIGUOUS]))

    return ", ".join(parts)
