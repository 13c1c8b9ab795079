"""The Forecast through the services and its page, on the sandbox banks: the day the checking account would go
negative once the salary is dismissed, the card bill paid from the checking account on its due day, thresholds
validated, stored and audited, and the page's warnings, bills and form."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.config import load_settings
from finance.errors import EditError
from finance.forecast import AccountStart, ThresholdError, occurrences
from finance.formatting import escape_markdown, format_money
from finance.recurring import add_months
from finance.services import open_services
from finance.store import forecast as forecast_store

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[1]


# ---- On the sandbox banks ------------------------------------------------------------------------------------------

@pytest.fixture
def svc(demo_copy: Path, offline: Path):
    services = open_services(load_settings())
    yield services
    services.engine.dispose()


def checking(svc) -> AccountStart:
    with svc.engine.connect() as conn:
        return next(a for a in forecast_store.forecast_accounts(conn) if a.type == "checking" and a.currency == "BRL")


def card(svc) -> AccountStart:
    with svc.engine.connect() as conn:
        return next(a for a in forecast_store.forecast_accounts(conn)
                    if a.type == "credit_card" and a.currency == "BRL")


def series_on(svc, account_id: str, today: date, day: date) -> Decimal:
    """What the recurring series expect on `account_id` on `day`."""
    return sum((amount for s in svc.recurring.series(today) if s.account_id == account_id
                for when, amount in occurrences(s, today, day) if when == day), Decimal(0))


def test_the_sandbox_forecast_goes_negative_without_the_salary(svc):
    today = date.today()
    account = checking(svc)
    salary = next(s for s in svc.recurring.series(today) if s.account_id == account.id and s.next_amount > 0
                  and s.next_amount > 1000)
    svc.recurring.choose(salary, "dismissed", actor="test")
    with svc.engine.begin() as conn:  # the account running low (the sandbox's balance varies with the connection)
        conn.execute(sa.text("UPDATE accounts SET current_balance = 100 WHERE id = :id"), {"id": account.id})
    account = checking(svc)
    found = svc.forecast.outlook(today, 90)
    warning = next(w for w in found.warnings if w.account_id == account.id)
    mine = found.projection[found.projection["account_id"] == account.id]
    first_negative = next(day for day, balance in zip(mine["day"], mine["balance"], strict=True) if balance < 0)
    assert warning.day == first_negative and warning.balance < 0 and warning.floor == 0
    expected = sum((amount for s in svc.recurring.series(today) if s.account_id == account.id
                    for day, amount in occurrences(s, today, warning.day)), account.balance)
    expected -= sum(b.amount for b in found.bills if b.payer_id == account.id and b.day <= warning.day)
    assert warning.balance == expected


def test_the_sandbox_card_bill_leaves_the_checking_account_on_its_due_day(svc):
    today = date.today()
    payer, owed = checking(svc), card(svc)
    assert owed.balance < 0
    found = svc.forecast.outlook(today, 90)
    bills = [b for b in found.bills if b.card_id == owed.id]
    first = bills[0]
    assert (first.payer_id, first.amount, first.estimated) == (payer.id, -owed.balance, False)
    assert first.day.day == 10 and today < first.day <= today + timedelta(days=31)  # due on the 10th, monthly
    assert [b.day for b in bills[1:]] == [add_months(first.day, n) for n in range(1, len(bills))]
    assert len(bills) >= 3 and all(b.estimated and b.amount > 0 for b in bills[1:])
    balances = {(r.account_id, r.day): r.balance for r in found.projection.itertuples()}
    before = first.day - timedelta(days=1)
    assert balances[(payer.id, first.day)] - balances[(payer.id, before)] == \
        series_on(svc, payer.id, today, first.day) - first.amount
    assert balances[(owed.id, first.day)] == sum(
        (series_on(svc, owed.id, today, today + timedelta(days=n)) for n in range((first.day - today).days + 1)),
        Decimal(0))  # the card back to zero, but for the installments since today
    assert found.cards_without_due_day == ()


def test_thresholds_are_validated_stored_and_audited(svc):
    account = checking(svc)
    assert svc.forecast.set_threshold(account.id, "100000", actor="ana") == "Threshold saved."
    assert svc.forecast.set_threshold(account.id, "100000.00", actor="ana") == "Nothing to change."
    warning = svc.forecast.outlook(date.today(), 30).warnings[0]
    assert (warning.account_id, warning.day, warning.threshold_set) == (account.id, date.today(), True)
    with pytest.raises(ThresholdError):
        svc.forecast.set_threshold(account.id, "'; DROP TABLE accounts; --", actor="ana")
    with pytest.raises(EditError):
        svc.forecast.set_threshold("no-such-account", "5", actor="ana")
    assert svc.forecast.set_threshold(account.id, "", actor="ana") == "Threshold removed."
    with svc.engine.connect() as conn:
        audit = conn.execute(sa.text("SELECT actor, action, object_id FROM audit_log WHERE action LIKE "
                                     "'%balance_threshold' ORDER BY occurred_at")).all()
        assert forecast_store.thresholds(conn) == {}
    assert [tuple(r) for r in audit] == [("ana", "balance_threshold", account.id),
                                         ("ana", "delete_balance_threshold", account.id)]


def test_the_page_warns_and_takes_a_threshold(svc):
    at = AppTest.from_file(str(REPO / "pages" / "forecast.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="forecast_horizon").options == ["30 days", "90 days"]
    owed = card(svc)
    bills = next(d.value for d in at.dataframe if "Paid from" in d.value.columns)
    assert (owed.name, format_money(-owed.balance, "BRL"), "owed now") in set(
        zip(bills["Card"], bills["Amount"], bills["Amount is"], strict=True))
    assert any("last 3 closed months" in c.value for c in at.caption) and not at.info
    account = checking(svc)
    at.selectbox(key="forecast_threshold_account").select(account.id)
    at.text_input(key="forecast_threshold_amount").input("not a number")
    next(b for b in at.button if b.label == "Save threshold").click()
    at.run()
    assert "plain number" in at.error[0].value
    with svc.engine.connect() as conn:
        assert forecast_store.thresholds(conn) == {}
    at.text_input(key="forecast_threshold_amount").input("100000")
    next(b for b in at.button if b.label == "Save threshold").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert escape_markdown("Threshold saved.") in at.success[0].value  # shown literally
    assert any(escape_markdown(account.name) in w.value and "threshold" in w.value for w in at.warning)


def test_the_page_names_a_card_with_no_known_due_day(svc):
    owed = card(svc)
    with svc.engine.begin() as conn:  # as if the card were new: no bill payment in its history
        conn.execute(sa.text("UPDATE transactions SET deleted_at = now() WHERE account_id = :id "
                             "AND category = 'transfer.credit_card_payment'"), {"id": owed.id})
    at = AppTest.from_file(str(REPO / "pages" / "forecast.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert escape_markdown(owed.name) in at.info[0].value and "due day is not known" in at.info[0].value
    bills = next((d.value for d in at.dataframe if "Paid from" in d.value.columns), None)
    assert bills is None or owed.name not in set(bills["Card"])
