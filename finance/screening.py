"""Rows that cannot be real never reach the store: they are set aside, with the reason, and the rest apply.

A provider answer can carry a row dated 9999-12-31, an empty or 10,000-character id, an amount no ledger holds,
an unknown currency, or one id twice with different values. Stored, such a row does lasting harm: a bad date
keeps it inside every later re-read window, where the removal check deletes the real row it stands for. So each
mapped batch is screened (in bulk, with Arrow) before it is staged; a batch the mapping cannot read as a whole is
mapped row by row so that only the unreadable rows are set aside. Pure: no store, no provider.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import InvalidOperation
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from babel.numbers import list_currencies

from finance.errors import BadData
from finance.i18n import format_number, ngettext
from finance.model import TRANSACTION_SCHEMA, SetAside

EARLIEST_YEARS = 30
"""How far back a transaction may be dated (providers send 1–2 years; imports bring more, never a century)."""
LATEST_DAYS = 366
"""How far ahead a transaction may be dated (scheduled payments and card installments fall within a year)."""
ID_PATTERN = r"^[!-~]{1,128}$"
"""A provider id: 1 to 128 printable ASCII characters without spaces (providers send UUIDs or ~40 characters)."""
KNOWN_CURRENCIES = frozenset(list_currencies())
"""ISO 4217 codes, current and historical (Babel's CLDR data)."""
CURRENCIES = pa.array(sorted(KNOWN_CURRENCIES), pa.string())

MAPPING_ERRORS = (BadData, pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, InvalidOperation)
"""What a mapping raises on a value it cannot read or the store cannot hold."""

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Limits:
    """The dates a real transaction can carry, around the provider's today."""

    earliest: date
    latest: date

    @classmethod
    def around(cls, today: date) -> Limits:
        return cls(earliest=date(today.year - EARLIEST_YEARS, 1, 1), latest=today + timedelta(days=LATEST_DAYS))


def short(value: object, limit: int = 40) -> str:
    """A value as a person can read it in a message: shortened, control characters out."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def map_screened(rows: Sequence[R], map_batch: Callable[[Sequence[R]], pa.RecordBatch],
                 describe: Callable[[R], tuple[object, object]], limits: Limits,
                 ) -> tuple[pa.RecordBatch | None, list[SetAside]]:
    """`rows` mapped by `map_batch`, less the rows that cannot be real (returned with their reasons).

    `describe(row)` gives a raw row's (id, account id), to name a row the mapping could not read at all.
    The batch is None when no row is left.
    """
    set_aside: list[SetAside] = []
    try:
        batches = [map_batch(rows)]
    except MAPPING_ERRORS:
        batches = []
        for row in rows:  # only when something is wrong: find which rows, keep the others
            try:
                batches.append(map_batch([row]))
            except MAPPING_ERRORS as exc:
                external_id, account_id = describe(row)
                set_aside.append(SetAside(str(external_id), str(account_id), _unreadable(exc)))
    if not batches:
        return None, set_aside
    batch = batches[0] if len(batches) == 1 else pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
    kept, screened = screen(batch, limits)
    return (kept if kept.num_rows else None), set_aside + screened


def _unreadable(exc: BaseException) -> str:
    if isinstance(exc, BadData):
        return exc.message
    return "a value the store cannot hold (an amount too large or a date out of range)"


def screen(batch: pa.RecordBatch, limits: Limits) -> tuple[pa.RecordBatch, list[SetAside]]:
    """A mapped batch (TRANSACTION_SCHEMA) less its impossible rows, and those rows with the reason."""
    if not batch.num_rows:
        return batch, []
    duplicated = _repeated_ids(batch)
    if not duplicated and _plainly_fine(batch, limits):
        return batch, []
    checks = _checks(batch, limits)
    bad = checks[0][1]
    for _, mask in checks[1:]:
        bad = pc.or_(bad, mask)
    if not pc.any(bad).as_py() and not duplicated:
        return batch, []
    ids = batch.column("external_id").to_pylist()
    accounts = batch.column("account_external_id").to_pylist()
    reasons: dict[int, str] = {}
    for describe, mask in checks:
        for index in pc.indices_nonzero(mask).to_pylist():
            reasons.setdefault(index, describe(batch, index))
    drop: set[int] = set(reasons)
    for external_id, indices in duplicated.items():
        copies = batch.take(pa.array(indices)).to_pylist()
        if all(copy == copies[-1] for copy in copies):
            drop.update(indices[:-1])  # the same row twice: keep one
        else:
            for index in indices:
                reasons.setdefault(index, sent_twice(external_id, accounts[index]).reason)
            drop.update(indices)
    keep = pa.array([i not in drop for i in range(batch.num_rows)], pa.bool_())
    set_aside = [SetAside(str(ids[i]), str(accounts[i]), reason) for i, reason in sorted(reasons.items())]
    return batch.filter(keep), set_aside


def _plainly_fine(batch: pa.RecordBatch, limits: Limits) -> bool:
    """True when whole-column checks show no row can fail (the common case, a few cheap Arrow calls): ids of 1 to
    128 printable characters without spaces, every date within the limits, only known currencies."""
    for column in ("external_id", "pending_external_id"):
        ids = batch.column(column)
        if ids.null_count == len(ids):
            continue
        lengths = pc.min_max(pc.utf8_length(ids))
        if lengths["min"].as_py() < 1 or lengths["max"].as_py() > 128:
            return False
        if not pc.all(pc.ascii_is_printable(ids)).as_py() or pc.any(pc.match_substring(ids, " ")).as_py():
            return False
    for column in ("booked_date", "authorized_date"):
        days = pc.min_max(batch.column(column))
        if days["min"].is_valid and not limits.earliest <= days["min"].as_py() <= days["max"].as_py() <= limits.latest:
            return False
    created = pc.max(batch.column("provider_created_at"))
    if created.is_valid and created.as_py().date() >= limits.latest:
        return False
    currencies = {*pc.unique(batch.column("currency")).to_pylist(), *pc.unique(batch.column("original_currency"))
                  .drop_null().to_pylist()}
    return currencies <= KNOWN_CURRENCIES


Check = tuple[Callable[[pa.RecordBatch, int], str], pa.Array]
"""A rule: how to describe a failing row, and which rows fail it."""


def _value(batch: pa.RecordBatch, column: str, index: int) -> object:
    return batch.column(column)[index].as_py()


def _checks(batch: pa.RecordBatch, limits: Limits) -> list[Check]:
    earliest = pa.scalar(limits.earliest, pa.date32())
    latest = pa.scalar(limits.latest, pa.date32())
    latest_instant = pa.scalar(datetime.combine(limits.latest, time(), UTC), TRANSACTION_SCHEMA.field(
        "provider_created_at").type)

    def out_of_range(column: str) -> pa.Array:
        values = batch.column(column)
        return pc.fill_null(pc.or_(pc.less(values, earliest), pc.greater(values, latest)), False)

    def unknown(column: str) -> pa.Array:
        values = batch.column(column)
        return pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=CURRENCIES)))

    def bad_id(column: str) -> pa.Array:
        values = batch.column(column)
        return pc.and_(pc.is_valid(values), pc.invert(pc.fill_null(pc.match_substring_regex(values, ID_PATTERN),
                                                                  False)))

    created = batch.column("provider_created_at")
    return [
        (lambda b, i: _id_reason("id", _value(b, "external_id", i)), bad_id("external_id")),
        (lambda b, i: f"date {_value(b, 'booked_date', i)} out of range", out_of_range("booked_date")),
        (lambda b, i: f"authorized date {_value(b, 'authorized_date', i)} out of range",
         out_of_range("authorized_date")),
        (lambda b, i: f"creation time {_value(b, 'provider_created_at', i)} in the future",
         pc.fill_null(pc.greater(created, latest_instant), False)),
        (lambda b, i: f"currency {short(_value(b, 'currency', i))!r} unknown", unknown("currency")),
        (lambda b, i: f"original currency {short(_value(b, 'original_currency', i))!r} unknown",
         unknown("original_currency")),
        (lambda b, i: _id_reason("pending id", _value(b, "pending_external_id", i)), bad_id("pending_external_id")),
    ]


def _id_reason(what: str, value: object) -> str:
    text = str(value)
    if not text:
        return f"{what} empty"
    if len(text) > 128:
        return f"{what} too long ({len(text):,} characters)"
    return f"{what} {short(text)!r} not a usable id"


def _repeated_ids(batch: pa.RecordBatch) -> dict[str, list[int]]:
    """Ids that occur more than once in the batch, with their row numbers (cheap when there are none)."""
    ids = batch.column("external_id")
    if pc.count_distinct(ids).as_py() == batch.num_rows:
        return {}
    values = ids.to_pylist()
    counts = Counter(values)
    found: dict[str, list[int]] = {}
    for index, value in enumerate(values):
        if counts[value] > 1:
            found.setdefault(value, []).append(index)
    return found


def sent_twice(external_id: str, account_external_id: str) -> SetAside:
    """One id sent twice in one answer with different values: neither copy can be trusted."""
    return SetAside(external_id, account_external_id,
                    f"id {short(external_id)} sent twice in one answer with different values")


def summary(set_aside: Sequence[SetAside], limit: int = 3) -> str:
    """'2 rows set aside: date 9999-12-31 out of range; id empty.' for a run's message; '' when none."""
    if not set_aside:
        return ""
    reasons = list(dict.fromkeys(item.reason for item in set_aside))
    more = len(reasons) - limit
    shown = "; ".join(reasons[:limit]) + ("; " + ngettext("and {count} more reason", "and {count} more reasons",
                                                          more).format(count=more) if more > 0 else "")
    return ngettext("{count} row set aside: {reasons}.", "{count} rows set aside: {reasons}.", len(set_aside)).format(
        count=format_number(len(set_aside)), reasons=shown)
