"""Matching file rows against stored ones (pure): the provider's row wins when both describe one transaction
(same amount, within three days, similar telling words), pairs are one to one, unlike descriptions are left to the
user, and a re-import is recognised. Properties: a file against the very rows it describes is all duplicates; a
file against nothing is all new; nothing is paired twice."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finance.imports.matching import Incoming, Stored, Verdict, place, similar

DAY = date(2024, 3, 10)


def incoming(key: str, days: int = 0, amount: str = "-50.00", text: str = "MERCADO CENTRAL") -> Incoming:
    return Incoming(key, DAY + timedelta(days=days), Decimal(amount), text)


def stored(id_: str, days: int = 0, amount: str = "-50.00", text: str = "Mercado Central", *,
           imported: bool = False) -> Stored:
    return Stored(id_, DAY + timedelta(days=days), Decimal(amount), text, imported)


def verdicts(rows: list[Incoming], store: list[Stored]) -> list[tuple[Verdict, str | None]]:
    return [(p.verdict, p.match.id if p.match else None) for p in place(rows, store)]


@pytest.mark.parametrize(("a", "b", "alike"), [
    ("PIX ENVIADO FULANO DE TAL", "Pix enviado - Fulano", True),
    ("NETFLIX.COM", "Netflix", True),
    ("COMPRA CARTAO 1234 MERCADO X", "MERCADO X LTDA", True),
    ("Supermercado Pao de Acucar", "PAO DE ACUCAR 123", True),
    ("TED 001 JOAO", "TED 002 MARIA", False),  # how the money moved is not with whom
    ("PIX ENVIADO JOAO", "PIX ENVIADO MARIA", False),
    ("PADARIA", "POSTO SHELL", False),
    ("", "anything", False),
])
def test_similar_descriptions(a: str, b: str, alike: bool):
    assert similar(a, b) is alike
    assert similar(b, a) is alike


def test_the_provider_row_wins_within_three_days():
    assert verdicts([incoming("f1", 0)], [stored("s1", 0)]) == [(Verdict.DUPLICATE, "s1")]
    assert verdicts([incoming("f1", 3)], [stored("s1", 0)]) == [(Verdict.DUPLICATE, "s1")]
    assert verdicts([incoming("f1", 4)], [stored("s1", 0)]) == [(Verdict.NEW, None)]
    assert verdicts([incoming("f1", amount="-50.01")], [stored("s1")]) == [(Verdict.NEW, None)]


def test_same_amount_and_day_with_another_description_is_for_the_user_to_decide():
    assert verdicts([incoming("f1", text="PIX ENVIADO MARIA")], [stored("s1", 1, text="PIX ENVIADO JOAO")]) == [
        (Verdict.AMBIGUOUS, "s1")]


def test_pairs_are_one_to_one_so_two_identical_purchases_stay_two():
    rows = [incoming("f1"), incoming("f2")]
    assert verdicts(rows, [stored("s1")]) == [(Verdict.DUPLICATE, "s1"), (Verdict.NEW, None)]
    assert verdicts(rows, [stored("s1"), stored("s2")]) == [(Verdict.DUPLICATE, "s1"), (Verdict.DUPLICATE, "s2")]


def test_the_best_pair_wins_not_the_first_row():
    rows = [incoming("f1", 2, text="MERCADO"), incoming("f2", 0, text="MERCADO CENTRAL")]
    # f2 is the exact twin of s1 (same day, same words), so f2 gets it; f1 has nothing left but is not a guess
    assert verdicts(rows, [stored("s1", 0, text="MERCADO CENTRAL")]) == [(Verdict.NEW, None),
                                                                          (Verdict.DUPLICATE, "s1")]


def test_a_reimport_is_recognised_by_key_and_an_earlier_import_of_another_format_by_likeness():
    assert verdicts([incoming("import:abc")], [stored("import:abc", imported=True)]) == [
        (Verdict.ALREADY_IMPORTED, "import:abc")]
    assert verdicts([incoming("import:new")], [stored("import:old", 1, imported=True)]) == [
        (Verdict.ALREADY_IMPORTED, "import:old")]


rows_strategy = st.lists(st.tuples(st.integers(0, 20), st.integers(-5_000, 5_000).filter(bool),
                                   st.sampled_from(["MERCADO", "PIX JOAO", "PIX MARIA", "UBER TRIP", "NETFLIX"])),
                         max_size=25)


@given(rows_strategy, st.integers(-3, 3))
def test_a_file_against_the_rows_it_describes_is_all_duplicates(specs, shift):
    rows = [Incoming(f"f{i}", DAY + timedelta(days=d), Decimal(c) / 100, t) for i, (d, c, t) in enumerate(specs)]
    synced = [Stored(f"s{i}", r.booked_date + timedelta(days=shift), r.amount, r.description.lower(), False)
              for i, r in enumerate(rows)]
    placements = place(rows, synced)
    assert all(p.verdict is Verdict.DUPLICATE for p in placements)
    matched = [p.match.id for p in placements if p.match]
    assert len(matched) == len(set(matched)) == len(rows)  # one to one: nothing paired twice


@given(rows_strategy)
def test_a_file_against_nothing_is_all_new_and_against_its_own_import_adds_nothing(specs):
    rows = [Incoming(f"f{i}", DAY + timedelta(days=d), Decimal(c) / 100, t) for i, (d, c, t) in enumerate(specs)]
    assert all(p.verdict is Verdict.NEW for p in place(rows, []))
    own = [Stored(r.key, r.booked_date, r.amount, r.description, True) for r in rows]
    assert all(p.verdict is Verdict.ALREADY_IMPORTED for p in place(rows, own))


def _most_pairs(rows: list[Incoming], store: list[Stored]) -> int:
    """The largest number of one-to-one pairs of alike rows, by trying every assignment (small inputs only)."""
    best = 0

    def extend(i: int, used: frozenset[str], pairs: int) -> None:
        nonlocal best
        best = max(best, pairs)
        if i == len(rows):
            return
        extend(i + 1, used, pairs)
        for s in store:
            if s.id not in used and s.amount == rows[i].amount and abs((s.booked_date - rows[i].booked_date).days) \
                    <= 3 and similar(rows[i].description, s.description):
                extend(i + 1, used | {s.id}, pairs + 1)

    extend(0, frozenset(), 0)
    return best


small = st.lists(st.tuples(st.integers(0, 6), st.sampled_from([-100, -250]), st.sampled_from(["MERCADO", "UBER"])),
                 max_size=6)


@given(small, small)
def test_as_many_pairs_as_there_can_be(file_specs, stored_specs):
    rows = [Incoming(f"f{i}", DAY + timedelta(days=d), Decimal(c), t) for i, (d, c, t) in enumerate(file_specs)]
    store = [Stored(f"s{i}", DAY + timedelta(days=d), Decimal(c), t, False) for i, (d, c, t) in enumerate(stored_specs)]
    placements = place(rows, store)
    assert sum(p.verdict is Verdict.DUPLICATE for p in placements) == _most_pairs(rows, store)
