"""The synthetic BRL ledger: Brazilian life as Pluggy shows it, deterministic, append-only, with pending churn."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, FormatChecker

from finance.providers.pluggy.sandbox.categories import PLUGGY_CATEGORIES, category_parent
from finance.providers.pluggy.sandbox.household import (
    CARD_LAST4,
    SAO_PAULO,
    BrazilianHousehold,
    bill_due_on,
    bill_total,
    brazilian_ledger,
)
from finance.providers.pluggy.sandbox.wire import generate_transactions, pluggy_transaction
from finance.sandbox.ledger import Entry, Ledger, add_months

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
SEED = 7
ITEM = "0b7f5c1e-2f4e-4f7a-9d1b-6c0f1a2b3c4d"
CREATED = datetime(2025, 6, 15, 15, 0, tzinfo=UTC)
CHECKING, CARD = 0, 1
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def transaction_validator() -> Draft7Validator:
    """Pluggy's Transaction schema, with date-time checked strictly (jsonschema alone would skip it)."""
    definitions = json.loads((REFERENCE / "pluggy-sdk-schemas.json").read_text())["definitions"]
    checker = FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(
        lambda v: not isinstance(v, str) or (bool(_RFC3339.match(v)) and bool(datetime.fromisoformat(v))))
    return Draft7Validator({"$ref": "#/definitions/PluggyTransaction", "definitions": definitions},
                           format_checker=checker)


def render(ledger: Ledger, account: int, moment: datetime,
           card_sign: str = "purchase_positive") -> list[dict[str, Any]]:
    card = ledger.profile.accounts[account].kind == "card"
    return [pluggy_transaction(entry, account_id="acc", pending=pending, created_at=appeared,
                               flip=card and card_sign == "purchase_positive",
                               card_number=CARD_LAST4 if card else None)
            for entry, pending, appeared in ledger.view(account, moment)]


def entries(ledger: Ledger, account: int, moment: datetime = CREATED) -> list[Entry]:
    return [entry for entry, _, _ in ledger.view(account, moment)]


def full_months(ledger: Ledger) -> list[tuple[int, int]]:
    start, end = ledger.profile.start, CREATED.astimezone(SAO_PAULO).date().replace(day=1)
    months, day = [], start
    while day < end:
        months.append((day.year, day.month))
        day = add_months(day, 1)
    return months


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return brazilian_ledger(SEED, ITEM, CREATED)


def test_history_starts_thirteen_months_before_creation_and_keeps_going(ledger: Ledger) -> None:
    first = entries(ledger, CHECKING)[0].when.date()
    assert first <= add_months(CREATED.date(), -13)
    later = CREATED + timedelta(days=40)
    assert any(e.when > CREATED for e in entries(ledger, CHECKING, later))
    assert any(e.when > CREATED for e in entries(ledger, CARD, later))


def test_monthly_volume_is_realistic(ledger: Ledger) -> None:
    for account, low, high in ((CHECKING, 60, 120), (CARD, 40, 80)):
        per_month = Counter((e.when.year, e.when.month) for e in entries(ledger, account))
        assert all(low <= per_month[m] <= high for m in full_months(ledger)), (account, per_month)


def test_salary_arrives_once_a_month(ledger: Ledger) -> None:
    salaries = [e for e in entries(ledger, CHECKING) if e.description == "SALARIO ACME LTDA"]
    assert Counter((e.when.year, e.when.month) for e in salaries) == Counter([*full_months(ledger), (2025, 6)])
    assert all(e.amount > 0 and e.category_id == "01010000" and e.when.weekday() < 5 for e in salaries)


def test_card_bill_is_paid_from_checking_and_credited_on_the_card(ledger: Ledger) -> None:
    card_entries = entries(ledger, CARD)
    payments = [e for e in entries(ledger, CHECKING) if e.kind == "bill_payment"]
    assert len(payments) >= 12
    credited = {(e.when, e.amount) for e in card_entries if e.kind == "bill_payment"}
    for payment in payments:
        close = bill_due_on(payment.when.date())
        assert close is not None
        assert payment.description == "PAGAMENTO FATURA CARTAO" and payment.category_id == "05100000"
        assert -payment.amount == bill_total(card_entries, close) > 0
        assert (payment.when, -payment.amount) in credited
    on_card = [t for t in render(ledger, CARD, CREATED) if t["categoryId"] == "05100000"]
    assert on_card and all(t["amount"] < 0 and t["type"] == "CREDIT" for t in on_card)


def test_installment_purchases_have_one_row_per_month(ledger: Ledger) -> None:
    moment = CREATED + timedelta(days=320)
    groups: dict[tuple[str, datetime, float], list[Entry]] = defaultdict(list)
    for entry in entries(ledger, CARD, moment):
        if entry.installment is not None and entry.kind != "bill_installment":  # purchases, not a financed bill
            key = (entry.merchant.name if entry.merchant else "", entry.installment.purchase_date,
                   entry.installment.total_amount)
            groups[key].append(entry)
    complete = [g for g in groups.values() if g[0].installment and len(g) == g[0].installment.total]
    assert len(complete) >= 3
    for group in complete:
        total = group[0].installment.total
        assert [e.installment.number for e in group] == list(range(1, total + 1))
        assert round(sum(e.amount for e in group), 2) == group[0].installment.total_amount
        assert all(e.when.date() == add_months(group[0].when.date(), i) for i, e in enumerate(group))
        assert group[1].description.endswith(f"PARC 02/{total:02d}")
    wire = [t for t in render(ledger, CARD, moment) if (t["creditCardMetadata"] or {}).get("totalInstallments")]
    assert wire and all(t["creditCardMetadata"]["billId"] and t["creditCardMetadata"]["purchaseDate"] for t in wire)


def test_card_rows_say_when_they_were_posted_to_the_bill_and_the_exact_time_if_known(ledger: Ledger) -> None:
    rows = list(zip(entries(ledger, CARD), render(ledger, CARD, CREATED), strict=True))
    pending = [meta for _, tx in rows if tx["status"] == "PENDING" and (meta := tx["creditCardMetadata"])]
    assert pending and all(m["billPostDate"] is None and m["billId"] is None for m in pending)
    settled = [(entry, tx) for entry, tx in rows if entry.posts_at is not None and tx["status"] == "POSTED"]
    assert settled and all(tx["creditCardMetadata"]["billPostDate"] == entry.posts_at.date().isoformat()
                           for entry, tx in settled)
    posted = [(entry, tx["creditCardMetadata"]) for entry, tx in rows if tx["status"] == "POSTED"]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", m["billPostDate"])
               and m["billPostDate"] >= entry.when.date().isoformat() for entry, m in posted)
    timed = [tx for entry, tx in rows if entry.exact_time]
    assert timed and all(tx["creditCardMetadata"]["transactionDateTime"] == tx["date"] for tx in timed)
    assert all(tx["creditCardMetadata"]["transactionDateTime"] is None for entry, tx in rows if not entry.exact_time)


def test_foreign_purchases_carry_usd_and_brl_amounts(ledger: Ledger) -> None:
    usd = [t for t in render(ledger, CARD, CREATED) if t["currencyCode"] == "USD"]
    assert len(usd) >= 13  # at least the monthly USD subscription
    for tx in usd:
        assert tx["amount"] > 0 and tx["amountInAccountCurrency"] > 0
        assert 4.0 < tx["amountInAccountCurrency"] / tx["amount"] < 7.0
    iof_days = {t["date"][:10] for t in render(ledger, CARD, CREATED) if t["categoryId"] == "15020000"}
    assert {t["date"][:10] for t in usd if t["date"].endswith("T03:00:00.000Z")} <= iof_days


def test_pix_boleto_and_ted_carry_payment_data(ledger: Ledger) -> None:
    rows = render(ledger, CHECKING, CREATED)
    by_method = defaultdict(list)
    for tx in rows:
        if tx["paymentData"]:
            by_method[tx["paymentData"]["paymentMethod"]].append(tx)
    assert {"PIX", "BOLETO", "TED"} <= set(by_method)
    for tx in by_method["PIX"]:
        payment = tx["paymentData"]
        assert tx["operationType"] == "PIX" and payment["payer"]["name"] and payment["receiver"]["name"]
        holder = payment["payer"] if tx["amount"] < 0 else payment["receiver"]
        assert holder["name"] == "John Doe"
    boleto = by_method["BOLETO"][0]["paymentData"]["boletoMetadata"]
    assert len(boleto["barcode"]) == 44 and boleto["digitableLine"] and boleto["baseAmount"] > 0
    categories = {t["categoryId"] for t in rows}
    assert {"17010000", "17020001", "17020002", "07010001", "04000000", "16010000", "05070000"} <= categories


def test_identical_purchases_exist_as_separate_rows(ledger: Ledger) -> None:
    rows = [t for t in render(ledger, CARD, CREATED) if t["status"] == "POSTED"]
    groups = Counter((t["date"], t["description"], t["amount"]) for t in rows)
    twins = [key for key, count in groups.items() if count > 1]
    assert len(twins) >= 12
    assert set(groups.values()) <= {1, 2}
    first = [t["id"] for t in rows if (t["date"], t["description"], t["amount"]) == twins[0]]
    assert len(set(first)) == 2


@pytest.mark.parametrize("card_sign", ["purchase_positive", "purchase_negative"])
def test_card_signs_follow_the_convention(ledger: Ledger, card_sign: str) -> None:
    purchases_positive = card_sign == "purchase_positive"
    card = render(ledger, CARD, CREATED, card_sign)
    purchases = [t for t in card if t["categoryId"] not in ("05100000",) and not t["description"].startswith("ESTORNO")]
    assert purchases and all((t["amount"] > 0) == purchases_positive for t in purchases)
    assert all(t["type"] == "DEBIT" for t in purchases)
    assert all(t["amount"] < 0 for t in render(ledger, CHECKING, CREATED) if t["type"] == "DEBIT")
    last = max(card, key=lambda t: (t["date"], t["id"]))
    assert (last["balance"] > 0) == purchases_positive  # what is owed


def test_running_balances_add_up(ledger: Ledger) -> None:
    checking = entries(ledger, CHECKING)
    for before, after in pairwise(checking):
        assert round(before.balance + after.final_amount, 2) == after.balance
    assert min(e.balance for e in checking) > -1000
    assert max(-e.balance for e in entries(ledger, CARD)) < 12000


def test_dates_are_mostly_local_midnight_with_some_late_evenings(ledger: Ledger) -> None:
    rows = render(ledger, CHECKING, CREATED) + render(ledger, CARD, CREATED)
    assert sum(t["date"].endswith("T03:00:00.000Z") for t in rows) > len(rows) / 2
    assert any(not t["date"].endswith(":00:00.000Z") for t in rows)
    late = [e for e in entries(ledger, CARD) if e.exact_time and e.when.hour >= 21]
    assert len(late) >= 13
    shifted = [e for e in late if e.when.astimezone(UTC).date() != e.when.date()]
    assert shifted == late  # 21:00 in São Paulo is already tomorrow in UTC


def test_pending_rows_post_later_under_a_new_id(ledger: Ledger) -> None:
    now = CREATED
    pending = [(e, appeared) for e, is_pending, appeared in ledger.view(CARD, now) if is_pending]
    assert pending
    later = {e.id: (is_pending, appeared) for e, is_pending, appeared in ledger.view(CARD, now + timedelta(days=5))}
    for entry, appeared in pending:
        assert appeared <= now < entry.posts_at
        assert entry.pending_id and entry.pending_id != entry.id
        assert later[entry.id] == (False, entry.posts_at)
    before = render(ledger, CARD, now)
    after = {t["id"] for t in render(ledger, CARD, now + timedelta(days=5))}
    assert not {t["id"] for t in before if t["status"] == "PENDING"} & after


def test_restaurant_tips_change_the_posted_amount_and_checking_rows_pend_for_a_day(ledger: Ledger) -> None:
    card = entries(ledger, CARD)
    tipped = [e for e in card if e.posted_amount is not None]
    assert tipped and all(e.category_id == "11010000" and 1.09 < e.posted_amount / e.amount < 1.21 for e in tipped)
    assert any(e.category_id == "11010000" and e.posted_amount is None for e in card)
    checking_pending = [e for e in entries(ledger, CHECKING) if e.pending_for is not None]
    assert checking_pending and all(timedelta(days=1) < e.pending_for < timedelta(days=2) for e in checking_pending)
    assert all(timedelta(days=2) < e.pending_for < timedelta(days=5) for e in card if e.pending_for is not None)


def test_the_past_never_changes_as_the_ledger_grows() -> None:
    def fresh() -> Ledger:
        return Ledger(f"{SEED}/{ITEM}", BrazilianHousehold(SEED, ITEM, CREATED))

    def dump(ledger: Ledger, account: int, until: date) -> list[tuple[object, ...]]:
        return [(e.id, e.pending_id, e.when, e.amount, e.posted_amount, e.balance, e.description, e.order)
                for e in ledger.entries[account] if e.when.date() <= until]

    stepwise = fresh()
    early = CREATED.date() - timedelta(days=20)
    stepwise.extend_to(early)
    snapshot = [dump(stepwise, a, early) for a in (CHECKING, CARD)]
    stepwise.extend_to(CREATED.date() + timedelta(days=60))
    at_once = fresh()
    at_once.extend_to(CREATED.date() + timedelta(days=60))
    for account in (CHECKING, CARD):
        assert dump(stepwise, account, early) == snapshot[account] == dump(at_once, account, early)
        assert dump(stepwise, account, CREATED.date()) == dump(at_once, account, CREATED.date())


def test_ledgers_depend_on_seed_and_item() -> None:
    same = brazilian_ledger(SEED, ITEM, CREATED)
    again = Ledger(f"{SEED}/{ITEM}", BrazilianHousehold(SEED, ITEM, CREATED))
    other = Ledger(f"8/{ITEM}", BrazilianHousehold(8, ITEM, CREATED))
    assert render(same, CARD, CREATED) == render(again, CARD, CREATED)
    assert render(same, CARD, CREATED) != render(other, CARD, CREATED)


def test_two_checking_accounts_move_money_between_them() -> None:
    ledger = brazilian_ledger(SEED, ITEM, CREATED, checking_accounts=2)
    assert [a.kind for a in ledger.profile.accounts] == ["checking", "checking", "card"]
    out = [e for e in entries(ledger, 0) if e.kind == "own_transfer"]
    into = {(e.when, e.amount) for e in entries(ledger, 1) if e.kind == "own_transfer"}
    assert out and all((e.when, -e.amount) in into for e in out)


def test_categories_follow_pluggy_taxonomy(ledger: Ledger) -> None:
    assert category_parent("07010001") == "07000000" and category_parent("07000000") is None
    assert all(re.fullmatch(r"\d{8}", c) and category_parent(c) in (None, *PLUGGY_CATEGORIES)
               for c in PLUGGY_CATEGORIES)
    used = {e.category_id for a in (CHECKING, CARD) for e in entries(ledger, a)}
    assert used <= set(PLUGGY_CATEGORIES)


def test_rendered_rows_match_the_transaction_schema(ledger: Ledger) -> None:
    validator = transaction_validator()
    assert not validator.is_valid({**render(ledger, CARD, CREATED)[0], "date": "2025-06-15"})  # the check bites
    for account in (CHECKING, CARD):
        for tx in render(ledger, account, CREATED):
            errors = list(validator.iter_errors(tx))
            assert not errors, (tx, errors[0].message)


def test_bulk_generator_is_deterministic_ordered_and_schema_shaped() -> None:
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    card = list(generate_transactions(1, "acc-1", "card", start, end, per_month=300))
    assert abs(len(card) - 300 * 366 / 30.4375) < 0.01 * len(card)
    assert card == list(generate_transactions(1, "acc-1", "card", start, end, per_month=300))
    assert [t["date"] for t in card] == sorted(t["date"] for t in card)
    assert len({t["id"] for t in card}) == len(card)
    assert sum(t["amount"] > 0 for t in card) > len(card) * 0.8  # purchases are positive on cards
    checking = list(generate_transactions(1, "acc-2", "checking", date(2024, 1, 1), date(2024, 3, 1), 100))
    validator = transaction_validator()
    for tx in card[:150] + checking[:150]:
        assert not list(validator.iter_errors(tx))
    with pytest.raises(ValueError):
        next(generate_transactions(1, "acc", "savings", start, end, 10))


def test_calendar_helpers() -> None:
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 3, 15), -14) == date(2023, 1, 15)
    ledger = Ledger("x", BrazilianHousehold(SEED, ITEM, CREATED))
    ledger.extend_to(ledger.profile.start + timedelta(days=3))
    with pytest.raises(ValueError):
        ledger.schedule(Entry(0, datetime(2020, 1, 1, tzinfo=SAO_PAULO), -1.0, "x", "99999999", "purchase"))
