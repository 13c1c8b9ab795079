"""Bulk (column) readers of wire values agree with the per-value readers, value for value and error for error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finance.errors import BadData
from finance.model import MONEY, WireAmounts
from finance.providers.wire import (
    date_array,
    exact_amounts,
    instant_array,
    money_array,
    per_distinct,
    wire_date,
    wire_decimal,
    wire_instant,
)


def expected_cents(values: list[Any], negate: bool) -> list[Decimal | None]:
    """What the store keeps, computed value by value: half-even cents of the exact amount, in our sign."""
    out = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        exact = wire_decimal(v, "amount", provider="pluggy", label="Pluggy")
        out.append((Decimal(0) - exact if negate else exact).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))
    return out


cents = st.decimals(min_value=Decimal("-99999999999.99"), max_value=Decimal("99999999999.99"), places=2,
                    allow_nan=False, allow_infinity=False)
any_amount = st.one_of(
    cents.map(float),  # what json.loads gives: the bulk path for floats
    cents,  # what parse_float=Decimal gives: the bulk path for Decimals
    st.decimals(min_value=-10**6, max_value=10**6, places=4, allow_nan=False, allow_infinity=False),  # rounding
    st.floats(min_value=-10**6, max_value=10**6, allow_nan=False, allow_infinity=False),  # any float at all
    st.integers(min_value=-10**9, max_value=10**9),
)


@given(values=st.lists(any_amount, min_size=1, max_size=30), negate=st.booleans())
def test_bulk_money_equals_exact_cents(values: list[Any], negate: bool) -> None:
    array = money_array(WireAmounts(values, negate, "amount"), provider="pluggy")
    assert array.type == MONEY
    assert array.to_pylist() == expected_cents(values, negate)


@pytest.mark.parametrize(("value", "stored"), [
    (2.675, "2.68"),  # its repr, 2.675, rounds half to even; its binary value (2.67499…) would give 2.67
    (0.125, "0.12"), (0.135, "0.14"), (0.1 + 0.2, "0.30"), (-45.9, "-45.90"), (1e12 + 0.01, "1000000000000.01"),
    (Decimal("0.005"), "0.00"), (Decimal("-212.45"), "-212.45"), (7, "7.00"),
])
def test_money_rounds_the_exact_amount_half_to_even(value: Any, stored: str) -> None:
    assert money_array(WireAmounts([value], False, "amount"), provider="pluggy").to_pylist() == [Decimal(stored)]


@pytest.mark.parametrize("bad", [None, "abc", True, float("nan"), float("inf"), Decimal("NaN"), {"v": 1}])
def test_an_unusable_amount_in_a_column_is_bad_data_like_a_single_one(bad: Any) -> None:
    values = [1.5, bad, 2.25]
    with pytest.raises(BadData) as bulk:
        money_array(WireAmounts(values, False, "amount"), provider="plaid")
    with pytest.raises(BadData) as single:
        wire_decimal(bad, "amount", provider="plaid", label="Plaid")
    assert bulk.value.code == single.value.code == "BAD_AMOUNT"


def test_amount_strings_read_like_numbers_in_bulk_as_one_by_one() -> None:
    amounts = WireAmounts([1.5, "12.5", 2.25], False, "amount")
    assert money_array(amounts, provider="pluggy").to_pylist() == [Decimal("1.50"), Decimal("12.50"), Decimal("2.25")]


def test_optional_amounts_keep_their_nulls_and_exact_values_keep_every_digit() -> None:
    amounts = WireAmounts([None, 0.1 + 0.2, Decimal("0.00")], True, "amount", optional=True)
    assert money_array(amounts, provider="plaid").to_pylist() == [None, Decimal("-0.30"), Decimal("0.00")]
    assert [str(v) for v in exact_amounts(amounts, provider="plaid")] == ["None", "-0.30000000000000004", "0.00"]


INSTANTS = ["2024-03-10T03:00:00.000Z", "2024-03-10T02:30:00Z", "2024-03-10T14:32:10.123456Z",
            "2024-03-10T03:00:00+03:00", "2024-03-10T03:00:00-0300", None, ""]
ODD_INSTANTS = ["2024-03-10", "2024-03-10T03:00:00", "2024-03-10T03:00:00.1234567Z", "2024-03-10 03:00:00Z"]


@pytest.mark.parametrize("values", [INSTANTS, INSTANTS + ODD_INSTANTS, ODD_INSTANTS, [None, None]])
def test_bulk_instants_equal_the_per_value_reader(values: list[Any]) -> None:
    expected = [wire_instant(v, provider="pluggy", label="Pluggy") for v in values]
    assert instant_array(values, provider="pluggy").to_pylist() == expected


@given(moments=st.lists(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                                     timezones=st.just(UTC)), min_size=1, max_size=20),
       style=st.sampled_from(["%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+00:00"]))
def test_bulk_instants_equal_the_per_value_reader_for_any_moment(moments: list[datetime], style: str) -> None:
    values = [m.strftime(style) for m in moments]
    expected = [wire_instant(v, provider="pluggy", label="Pluggy") for v in values]
    assert instant_array(values, provider="pluggy").to_pylist() == expected


def test_an_unreadable_instant_in_a_column_is_bad_data() -> None:
    with pytest.raises(BadData) as info:
        instant_array(["2024-03-10T03:00:00Z", "10/03/2024"], provider="pluggy")
    assert info.value.code == "BAD_DATE"


@pytest.mark.parametrize("values", [["2024-03-10", "2023-12-31"], ["2024-03-10", "20240310", "2024-W10-1"]])
def test_bulk_dates_equal_the_per_value_reader(values: list[str]) -> None:
    expected = [wire_date(v, "date", provider="plaid", label="Plaid") for v in values]
    assert date_array(values, "date", provider="plaid").to_pylist() == expected


def test_dates_nulls_only_where_optional() -> None:
    assert date_array([None, "2024-01-02"], "authorized date", provider="plaid", optional=True).to_pylist() == [
        None, datetime(2024, 1, 2).date()]
    with pytest.raises(BadData) as info:
        date_array([None, "2024-01-02"], "date", provider="plaid")
    assert info.value.code == "BAD_DATE"


def test_per_distinct_applies_the_rule_once_per_value_and_copes_with_unhashable_values() -> None:
    calls: list[Any] = []

    def rule(value: Any) -> str:
        calls.append(value)
        return f"<{value}>"

    assert per_distinct(["a", "b", "a", None, "a"], rule) == ["<a>", "<b>", "<a>", "<None>", "<a>"]
    assert sorted(map(str, calls)) == ["None", "a", "b"]
    assert per_distinct([["x"], "y"], lambda v: str(v)) == ["['x']", "y"]


def test_arrow_column_types_match_the_schema() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    values = [(start + timedelta(hours=h)).isoformat() for h in range(3)]
    assert instant_array(values, provider="pluggy").type == pa.timestamp("us", tz="UTC")
