"""Balance history reconstructed backwards from today's balance."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from finance.balances import Position, Trade, investment_history, loan_history, reconstruct_balances

D = Decimal
AS_OF = date(2024, 3, 10)


def day(n: int) -> date:
    return date(2024, 3, n)


def test_simple_ledger() -> None:
    series = reconstruct_balances(D("1000.00"), AS_OF, {day(8): D("-50.00"), day(10): D("200.00")})
    assert series == [(day(8), D("800.00")), (day(9), D("800.00")), (day(10), D("1000.00"))]


def test_every_day_with_activity() -> None:
    net = {day(7): D("10.10"), day(8): D("-0.10"), day(9): D("-250.00"), day(10): D("0.01")}
    series = reconstruct_balances(D("500.00"), AS_OF, net)
    assert series == [(day(7), D("750.09")), (day(8), D("749.99")), (day(9), D("499.99")), (day(10), D("500.00"))]


def test_days_without_activity_carry_the_balance() -> None:
    series = reconstruct_balances(D("100"), AS_OF, {day(3): D("-40")})
    assert series == [(day(n), D("100")) for n in range(3, 11)]


def test_card_balance_owed_is_negative_and_purchases_deepen_it() -> None:
    series = reconstruct_balances(D("-1250.55"), AS_OF, {day(9): D("-100.00"), day(10): D("500.00")})
    assert series == [(day(9), D("-1750.55")), (day(10), D("-1250.55"))]


def test_future_dated_rows_are_ignored() -> None:
    net = {day(9): D("-20"), day(10): D("30"), day(11): D("999"), day(25): D("-5")}
    assert reconstruct_balances(D("100"), AS_OF, net) == [(day(9), D("70")), (day(10), D("100"))]


def test_only_future_rows_give_today_only() -> None:
    assert reconstruct_balances(D("100"), AS_OF, {day(12): D("999")}) == [(AS_OF, D("100"))]


def test_no_activity_gives_today_only() -> None:
    assert reconstruct_balances(D("42.42"), AS_OF, {}) == [(AS_OF, D("42.42"))]


def test_start_before_the_first_activity_extends_the_series() -> None:
    series = reconstruct_balances(D("1000"), AS_OF, {day(8): D("-50"), day(10): D("200")}, start=day(5))
    assert series == [(day(5), D("850")), (day(6), D("850")), (day(7), D("850")), (day(8), D("800")),
                      (day(9), D("800")), (day(10), D("1000"))]


def test_start_after_the_first_activity_cuts_the_series() -> None:
    series = reconstruct_balances(D("1000"), AS_OF, {day(8): D("-50"), day(10): D("200")}, start=day(9))
    assert series == [(day(9), D("800")), (day(10), D("1000"))]


def test_start_on_as_of() -> None:
    assert reconstruct_balances(D("7"), AS_OF, {day(10): D("3")}, start=AS_OF) == [(AS_OF, D("7"))]


def test_start_after_as_of_is_empty() -> None:
    assert reconstruct_balances(D("7"), AS_OF, {day(10): D("3")}, start=day(11)) == []


def test_series_spans_a_month_boundary() -> None:
    series = reconstruct_balances(D("10"), date(2024, 3, 1), {date(2024, 2, 28): D("1"), date(2024, 2, 29): D("2")})
    assert series == [(date(2024, 2, 28), D("8")), (date(2024, 2, 29), D("10")), (date(2024, 3, 1), D("10"))]


amounts = st.decimals(min_value=D("-10000"), max_value=D("10000"), places=2, allow_nan=False, allow_infinity=False)


@given(current=amounts, net=st.dictionaries(st.integers(min_value=-60, max_value=10), amounts, max_size=20))
def test_consecutive_days_differ_by_that_days_net(current: Decimal, net: dict[int, Decimal]) -> None:
    daily = {AS_OF + timedelta(days=offset): amount for offset, amount in net.items()}
    series = reconstruct_balances(current, AS_OF, daily)

    past = [d for d in daily if d <= AS_OF]
    first = min(past) if past else AS_OF
    assert [d for d, _ in series] == [first + timedelta(days=i) for i in range((AS_OF - first).days + 1)]
    assert series[-1] == (AS_OF, current)
    for (_, before), (d, after) in pairwise(series):
        assert after - before == daily.get(d, D(0))
    assert series[0][1] == current - sum((a for d, a in daily.items() if first < d <= AS_OF), D(0))


# ---- Loans and investments (issue 19): no cliff on any day -------------------------------------------------------

def test_loan_history_owes_more_before_each_payment_and_starts_at_the_given_day() -> None:
    series = loan_history(D("-9000.00"), AS_OF, [(day(5), D("500.00")), (day(5), D("100.00"))], start=day(3))
    assert series[0] == (day(3), D("-9600.00"))
    assert dict(series)[day(5)] == D("-9000.00")
    assert series[-1] == (AS_OF, D("-9000.00"))
    assert [d for d, _ in series] == [day(n) for n in range(3, 11)]


def test_loan_history_without_payments_is_flat_back_to_the_start() -> None:
    assert loan_history(D("-100.00"), AS_OF, [], start=day(1)) == [(day(n), D("-100.00")) for n in range(1, 11)]


def test_investment_history_of_positions_only_grows_with_each_buy_and_ends_at_the_balance() -> None:
    """A fund bought twice from a checking account: fewer units before each buy, priced between the trades."""
    positions = [Position("fund", D("20"), D("2400.00"))]
    trades = [Trade(day(2), D("-1000.00"), "fund", D("10"), D("100")),
              Trade(day(6), D("-1100.00"), "fund", D("10"), D("110"))]
    series = dict(investment_history(D("2400.00"), positions, trades, AS_OF, start=day(1)))
    assert min(series) == day(1)
    assert series[day(1)] == D("0.00") and series[day(2)] == D("1000.00")
    assert series[day(5)] == D("10") * (D(100) + D(10) * 3 / 4)
    assert series[day(6)] == D("2200.00")
    assert series[AS_OF] == D("2400.00")
    jumps = [b - a for a, b in pairwise(series[d] for d in sorted(series))]
    assert jumps[-1] == D("50.00")  # the price moves a day at a time: no cliff on the last day


def test_investment_history_with_cash_moves_cash_into_units_without_changing_the_total() -> None:
    positions = [Position("cash", D("500"), D("500.00"), is_cash=True), Position("etf", D("5"), D("500.00"))]
    trades = [Trade(day(8), D("-500.00"), "etf", D("5"), D("100"))]
    series = investment_history(D("1000.00"), positions, trades, AS_OF, start=day(6))
    assert series == [(day(n), D("1000.00")) for n in range(6, 11)]


def test_investment_history_counts_a_security_sold_since() -> None:
    positions = [Position("cash", D("300"), D("300.00"), is_cash=True)]
    trades = [Trade(day(9), D("300.00"), "old", D("-3"), D("100"))]
    assert investment_history(D("300.00"), positions, trades, AS_OF, start=day(8)) == [
        (day(8), D("300.00")), (day(9), D("300.00")), (day(10), D("300.00"))]


def test_investment_history_without_trades_is_flat() -> None:
    positions = [Position("cdb", D("1"), D("5230.10"))]
    assert investment_history(D("5230.10"), positions, [], AS_OF, start=day(9)) == [
        (day(9), D("5230.10")), (day(10), D("5230.10"))]
