"""Reading values off a provider's wire: exact decimals, timestamps and dates, or BadData naming the provider.

Each reader exists twice only in form: per value (exact Python objects) and per column (Arrow arrays, for bulk
ingest). A column is read in bulk when every value takes the common, unambiguous form; otherwise it is read value
by value with the per-value reader, so both give the same result and raise the same BadData.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from finance.errors import BadData
from finance.model import (
    MONEY,
    TRANSACTION_SCHEMA,
    Transaction,
    TransactionColumns,
    TxnStatus,
    WireAmounts,
    money,
)

INSTANT = pa.timestamp("us", tz="UTC")
FLOAT_EXACT_BELOW = 1e13
"""Floats under this size that round-trip through cents carry at most two decimals in their repr (ulp < 1/100)."""


def label_of(provider: str) -> str:
    """A provider's name as people read it in messages (its capitalised name)."""
    return provider.capitalize()


def wire_decimal(value: Any, field: str, *, provider: str, label: str) -> Decimal:
    """A finite Decimal from a JSON number (already a Decimal when parsed with parse_float=Decimal)."""
    if isinstance(value, bool) or value is None:
        raise BadData(f"{label} sent no usable {field}.", code="BAD_AMOUNT", provider=provider)
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise BadData(f"{label} sent an unreadable {field}: {str(value)[:40]!r}", code="BAD_AMOUNT",
                      provider=provider) from exc
    if not result.is_finite():
        raise BadData(f"{label} sent an unreadable {field}: {str(value)[:40]!r}", code="BAD_AMOUNT",
                      provider=provider)
    return result


def wire_instant(value: Any, *, provider: str, label: str) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime (UTC when it carries no offset); None when absent."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadData(f"{label} sent an unreadable date: {str(value)[:40]!r}", code="BAD_DATE",
                      provider=provider) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def wire_date(value: Any, field: str, *, provider: str, label: str) -> date:
    """An ISO calendar date (YYYY-MM-DD)."""
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise BadData(f"{label} sent an unreadable {field}: {str(value)[:40]!r}", code="BAD_DATE",
                      provider=provider) from exc


def _signed(value: Decimal, negate: bool) -> Decimal:
    return Decimal(0) - value if negate else value  # 0 - x: a negated zero stays an unsigned zero


def exact_amounts(amounts: WireAmounts, *, provider: str) -> list[Decimal | None]:
    """Each amount as the exact Decimal the provider sent, in our sign."""
    label = label_of(provider)
    return [None if v is None and amounts.optional
            else _signed(wire_decimal(v, amounts.field, provider=provider, label=label), amounts.negate)
            for v in amounts.values]


def money_array(amounts: WireAmounts, *, provider: str) -> pa.Array:
    """The amounts as store money (half-even cents of the exact value, in our sign), converted in bulk.

    Bulk paths: all floats whose cents convert back to the same float (every two-decimal amount), or all
    Decimals/ints with at most two decimals. Anything else goes value by value through `wire_decimal`.
    """
    values = amounts.values
    array = _bulk_money(values, amounts.optional)
    if array is None:
        exact = exact_amounts(WireAmounts(values, False, amounts.field, amounts.optional), provider=provider)
        array = pa.array([None if v is None else money(v) for v in exact], MONEY)
    return pc.negate(array) if amounts.negate else array


def _bulk_money(values: Sequence[Any], optional: bool) -> pa.Array | None:
    kinds = {type(v) for v in values}
    if optional:
        kinds.discard(type(None))
    if not kinds:
        return pa.nulls(len(values), MONEY)
    if kinds == {float}:
        floats = pa.array(values, pa.float64())
        bounds = pc.min_max(floats)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is None or not -FLOAT_EXACT_BELOW < low <= high < FLOAT_EXACT_BELOW:  # also refuses NaN, infinities
            return None
        # c / 100.0 is the double nearest to the decimal c/100 (IEEE division rounds correctly), so a float
        # equal to it is exactly what a two-decimal amount reads as, and its repr is that amount.
        cents = pc.round(pc.multiply(floats, 100.0))
        if not pc.all(pc.equal(pc.divide(cents, 100.0), floats)).as_py():
            return None  # more than two decimals, or a half cent: round the exact value instead
        return pc.cast(pc.cast(cents, pa.int64()), pa.decimal128(19, 0)).view(MONEY)  # c units of 0.01
    if kinds <= {Decimal, int}:
        try:
            return pa.array(values, MONEY)  # refuses NaN, infinities and anything needing rounding
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return None
    return None


def per_distinct(values: Sequence[Any], rule: Callable[[Any], Any]) -> list[Any]:
    """`rule` applied to each value, computed once per distinct value (categories, statuses and methods repeat)."""
    try:
        memo = {v: rule(v) for v in set(values)}
    except TypeError:  # an unhashable value (a provider sending an object where a code belongs)
        return [rule(v) for v in values]
    return [memo[v] for v in values]


def instant_array(values: Sequence[Any], *, provider: str) -> pa.Array:
    """Each ISO 8601 timestamp as UTC microseconds; empty values are null (like `wire_instant`)."""
    try:  # strings and nulls only (anything else is refused here), in a form Arrow reads
        return pc.cast(pa.array(values, pa.string()), INSTANT)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass  # a form Arrow does not read (empty, no offset, date only, …) or not text: read each value below
    label = label_of(provider)
    return pa.array([wire_instant(v, provider=provider, label=label) for v in values], INSTANT)


def date_array(values: Sequence[Any], field: str, *, provider: str, optional: bool = False) -> pa.Array:
    """Each ISO calendar date; None is null when `optional`, else unreadable."""
    if all(v.__class__ is str or (optional and v is None) for v in values):
        try:
            return pc.cast(pa.array(values, pa.string()), pa.date32())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    label = label_of(provider)
    return pa.array([None if optional and v is None else wire_date(v, field, provider=provider, label=label)
                     for v in values], pa.date32())


def local_dates(instants: pa.Array, zone: str) -> pa.Array:
    """The calendar day of each instant in `zone` (an IANA name)."""
    local = pc.local_timestamp(instants.cast(pa.timestamp("us", tz=zone)))
    return pc.cast(local, pa.date32())


def _missing(provider: str, name: str) -> BadData:
    return BadData(f"{label_of(provider)} sent a transaction without a usable {name.replace('_', ' ')}.",
                   code="BAD_TRANSACTION", provider=provider)


def to_batch(columns: TransactionColumns) -> pa.RecordBatch:
    """A mapping's columns as an Arrow batch of TRANSACTION_SCHEMA, for the store."""
    arrays = []
    for spec in TRANSACTION_SCHEMA:
        column = getattr(columns, spec.name)
        if column is None:  # an optional column the mapping left out
            array = pa.nulls(len(columns), spec.type)
        elif isinstance(column, WireAmounts):
            array = money_array(column, provider=columns.provider)
        elif isinstance(column, pa.Array):
            array = column if column.type == spec.type else column.cast(spec.type)
        else:
            array = pa.array(column, spec.type)
        if not spec.nullable and array.null_count:
            raise _missing(columns.provider, spec.name)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=TRANSACTION_SCHEMA)


def to_transactions(columns: TransactionColumns) -> list[Transaction]:
    """A mapping's columns as `Transaction` objects, amounts as the exact Decimals the provider sent."""
    values: dict[str, list[Any]] = {}
    for spec in TRANSACTION_SCHEMA:
        column = getattr(columns, spec.name)
        if column is None:  # an optional column the mapping left out
            values[spec.name] = [None] * len(columns)
        elif isinstance(column, WireAmounts):
            values[spec.name] = exact_amounts(column, provider=columns.provider)
        elif isinstance(column, pa.Array):
            values[spec.name] = column.to_pylist()
        else:
            values[spec.name] = list(column)
        if not spec.nullable and None in values[spec.name]:
            raise _missing(columns.provider, spec.name)
    values["status"] = [TxnStatus(s) for s in values["status"]]
    names = list(values)
    return [Transaction(columns.provider, **dict(zip(names, row, strict=True)))
            for row in zip(*values.values(), strict=True)]
