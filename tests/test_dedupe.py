"""Pending→posted pairing: tips and settling dates pair, identical real purchases never collapse."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finance.dedupe import Candidate, match_score, pair_pending_with_posted

DAY = date(2024, 3, 10)


def cand(id_: str, amount: str, day: date = DAY, account: str = "acc-1", merchant: str | None = None) -> Candidate:
    return Candidate(id=id_, account_id=account, amount=Decimal(amount), booked_date=day, merchant=merchant)


# --------------------------------------------------------------------------------------------
# match_score
# --------------------------------------------------------------------------------------------

def test_tip_of_fifteen_percent_pairs() -> None:
    pending = cand("p1", "-100.00", merchant="RESTAURANTE SABOR")
    posted = cand("q1", "-115.00", DAY + timedelta(days=2), merchant="Restaurante Sabor LTDA")
    assert match_score(pending, posted) == pytest.approx(0.15 + 0.04 - 0.5)
    assert pair_pending_with_posted([pending], [posted]) == [("p1", "q1")]


def test_exact_same_amount_same_day_scores_zero() -> None:
    assert match_score(cand("p1", "-42.00"), cand("q1", "-42.00")) == 0.0


def test_different_account_never_pairs() -> None:
    pending = cand("p1", "-100.00")
    posted = cand("q1", "-100.00", account="acc-2")
    assert match_score(pending, posted) is None
    assert pair_pending_with_posted([pending], [posted]) == []


@pytest.mark.parametrize(("pending_amount", "posted_amount"), [("-100.00", "100.00"), ("25.00", "-25.00"),
                                                               ("-0.50", "0.40")])
def test_opposite_sign_never_pairs(pending_amount: str, posted_amount: str) -> None:
    pending = cand("p1", pending_amount)
    posted = cand("q1", posted_amount)
    assert match_score(pending, posted) is None
    assert pair_pending_with_posted([pending], [posted]) == []


@pytest.mark.parametrize(("days", "pairs"), [(-4, False), (-3, True), (0, True), (10, True), (11, False)])
def test_date_window(days: int, pairs: bool) -> None:
    score = match_score(cand("p1", "-10.00"), cand("q1", "-10.00", DAY + timedelta(days=days)))
    assert (score is not None) is pairs


@pytest.mark.parametrize(("posted_amount", "pairs"), [
    ("-130.00", True),  # +30 %: the edge of the tolerance
    ("-130.01", False),
    ("-70.00", True),
    ("-69.99", False),
])
def test_amount_tolerance_is_thirty_percent(posted_amount: str, pairs: bool) -> None:
    assert (match_score(cand("p1", "-100.00"), cand("q1", posted_amount)) is not None) is pairs


@pytest.mark.parametrize(("posted_amount", "pairs"), [("-3.00", True), ("-3.01", False)])
def test_small_amounts_have_a_one_unit_floor(posted_amount: str, pairs: bool) -> None:
    assert (match_score(cand("p1", "-2.00"), cand("q1", posted_amount)) is not None) is pairs


def test_zero_pending_amount_does_not_divide_by_zero() -> None:
    assert match_score(cand("p1", "0"), cand("q1", "0.50")) == 0.5


# --------------------------------------------------------------------------------------------
# pair_pending_with_posted
# --------------------------------------------------------------------------------------------

def test_two_identical_pendings_and_two_identical_posted_make_two_pairs() -> None:
    pending = [cand("p1", "-9.90", merchant="CAFE"), cand("p2", "-9.90", merchant="CAFE")]
    posted = [cand("q1", "-9.90", DAY + timedelta(days=1), merchant="CAFE"),
              cand("q2", "-9.90", DAY + timedelta(days=1), merchant="CAFE")]
    pairs = pair_pending_with_posted(pending, posted)
    assert sorted(pairs) == [("p1", "q1"), ("p2", "q2")]


def test_one_pending_and_two_identical_posted_make_one_pair() -> None:
    pending = [cand("p1", "-9.90")]
    posted = [cand("q1", "-9.90", DAY + timedelta(days=1)), cand("q2", "-9.90", DAY + timedelta(days=1))]
    assert pair_pending_with_posted(pending, posted) == [("p1", "q1")]


def test_two_pendings_and_one_posted_make_one_pair() -> None:
    pending = [cand("p1", "-9.90"), cand("p2", "-9.90")]
    posted = [cand("q1", "-9.90")]
    assert pair_pending_with_posted(pending, posted) == [("p1", "q1")]


def test_best_scores_win() -> None:
    pending = [cand("p-small", "-50.00"), cand("p-large", "-100.00")]
    posted = [cand("q-large", "-100.00"), cand("q-small", "-51.00")]
    assert sorted(pair_pending_with_posted(pending, posted)) == [("p-large", "q-large"), ("p-small", "q-small")]


def test_merchant_match_breaks_a_tie() -> None:
    pending = [cand("p1", "-20.00", merchant="Uber *Trip")]
    posted = [cand("q-other", "-20.00", merchant="99 Taxi"), cand("q-uber", "-20.00", merchant="UBER TRIP")]
    assert pair_pending_with_posted(pending, posted) == [("p1", "q-uber")]


def test_empty_inputs() -> None:
    assert pair_pending_with_posted([], []) == []
    assert pair_pending_with_posted([cand("p1", "-1.00")], []) == []
    assert pair_pending_with_posted([], [cand("q1", "-1.00")]) == []


# --------------------------------------------------------------------------------------------
# Property
# --------------------------------------------------------------------------------------------

fields = st.tuples(
    st.sampled_from(["acc-1", "acc-2"]),
    st.sampled_from(["-100.00", "-99.00", "-115.00", "-9.90", "-9.90", "-2.00", "0", "5.00", "100.00", "130.00"]),
    st.integers(min_value=-5, max_value=12),
    st.sampled_from([None, "CAFE", "Uber"]),
)


def _candidates(prefix: str, rows: list[tuple[str, str, int, str | None]]) -> list[Candidate]:
    return [Candidate(id=f"{prefix}{i}", account_id=account, amount=Decimal(amount),
                      booked_date=DAY + timedelta(days=offset), merchant=merchant)
            for i, (account, amount, offset, merchant) in enumerate(rows)]


@given(pending_rows=st.lists(fields, max_size=8), posted_rows=st.lists(fields, max_size=8), data=st.data())
def test_pairs_are_one_to_one_valid_maximal_and_order_independent(pending_rows: list, posted_rows: list,
                                                                  data: st.DataObject) -> None:
    pending = _candidates("p", pending_rows)
    posted = _candidates("q", posted_rows)
    pairs = pair_pending_with_posted(pending, posted)

    by_id = {c.id: c for c in [*pending, *posted]}
    pending_ids = [p for p, _ in pairs]
    posted_ids = [q for _, q in pairs]
    assert len(set(pending_ids)) == len(pending_ids)
    assert len(set(posted_ids)) == len(posted_ids)
    assert set(pending_ids) <= {c.id for c in pending}
    assert set(posted_ids) <= {c.id for c in posted}
    for p, q in pairs:
        assert match_score(by_id[p], by_id[q]) is not None

    # nothing left over could still pair: two identical real purchases stay two rows, not one lost
    free_pending = [c for c in pending if c.id not in set(pending_ids)]
    free_posted = [c for c in posted if c.id not in set(posted_ids)]
    assert all(match_score(p, q) is None for p in free_pending for q in free_posted)

    shuffled = pair_pending_with_posted(data.draw(st.permutations(pending)), data.draw(st.permutations(posted)))
    assert sorted(shuffled) == sorted(pairs)
