"""Alerts (issue 17, item 5): the pure rules and their dedupe keys, the store, svc.alerts.evaluate after syncs, the
settings and their validation, and the e-mails through a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from hypothesis import given
from hypothesis import strategies as st

from finance import alerts, health
from finance.alerts import AlertSettings, AlertSettingsError
from finance.budgets import BudgetLine
from finance.config import SmtpSettings, load_settings
from finance.health import BannerItem
from finance.recurring import PriceChange, Series
from finance.services import Services, open_services
from finance.store import alerts as alert_store

pytestmark = pytest.mark.engines

HOSTILE = "**x** <img src=x>"
TODAY = date(2026, 12, 7)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def expense(tid: str, amount: str, currency: str = "BRL", booked: date = TODAY, merchant: str | None = "Shop"
            ) -> dict[str, object]:
    return {"id": tid, "booked_date": booked, "amount": Decimal(amount), "currency": currency,
            "description": f"PAYMENT {tid}", "merchant": merchant, "account": "Checking"}


# --- the pure rules ---------------------------------------------------------------------------------------------

def test_a_large_expense_raises_one_alert_per_transaction_at_or_over_its_currency_threshold():
    rows = [expense("a", "-1000.00"), expense("b", "-999.99"), expense("c", "-600.00", "USD"),
            expense("d", "-5000.00", booked=TODAY - timedelta(days=8))]
    found = alerts.large_transactions(rows, AlertSettings(), TODAY)
    assert [a.key for a in found] == ["large_transaction:a", "large_transaction:c"]
    assert found[0].title == "Large transaction: R$ 1.000,00 at Shop"
    assert "your threshold for BRL is R$ 1.000,00" in found[0].detail
    assert alerts.large_transactions(rows, AlertSettings(thresholds={"USD": Decimal("700")}), TODAY)[1:] == []


def test_a_kind_turned_off_raises_nothing():
    off = AlertSettings(disabled=frozenset(alerts.KINDS))
    item = BannerItem("c1", "Bank", "needs_reconnect", "Log in again.")
    line = BudgetLine("food", "Food", "BRL", Decimal(100), Decimal(150), Decimal(-50), True)
    assert alerts.evaluate(settings=off, today=TODAY, large=[expense("a", "-9000")], reconnect_items=[item],
                           budget_lines=[line]) == []


def test_a_connection_raises_one_reconnect_alert_per_episode_and_none_while_consent_is_only_expiring():
    broken = BannerItem("c1", HOSTILE, health.NEEDS_RECONNECT, "The bank needs you to log in again.")
    expiring = BannerItem("c2", "Other", health.CONSENT_EXPIRING, "Expires soon.")
    first = datetime(2026, 12, 1, tzinfo=UTC)
    found = alerts.reconnects([broken, expiring], {"c1": first}, AlertSettings())
    assert [a.key for a in found] == [f"reconnect:c1:{first.isoformat()}"]
    assert found[0].title == f"{HOSTILE} needs you to reconnect"
    later = alerts.reconnects([broken], {"c1": first + timedelta(days=3)}, AlertSettings())
    assert later[0].key != found[0].key  # repaired and broken again: a new alert


def test_a_category_over_budget_raises_one_alert_per_month_category_and_currency():
    lines = [BudgetLine("food", "Food", "BRL", Decimal(100), Decimal(150), Decimal(-50), True),
             BudgetLine("food", "Food", "USD", Decimal(100), Decimal(50), Decimal(50), False)]
    found = alerts.over_budget(lines, TODAY, AlertSettings())
    assert [a.key for a in found] == ["over_budget:2026-12:food:BRL"]
    assert found[0].title == "Food is over budget for December 2026 (BRL)"
    assert found[0].detail == "Spent R$ 150,00 of R$ 100,00 budgeted: R$ 50,00 over."


def series(key: str = "s1", **fields: object) -> Series:
    """A detected monthly subscription at R$ 39,90 (override any field)."""
    values: dict[str, object] = dict(
        key=key, account_id="pluggy:acc", merchant="Netflix", currency="BRL", kind="subscription", cadence="monthly",
        amount=Decimal("-39.90"), first_date=date(2026, 10, 5), last_date=date(2026, 12, 5),
        next_date=date(2027, 1, 5), next_amount=Decimal("-39.90"), occurrences=3, remaining=None, price_changes=(),
        missed=False, is_new=True)
    return Series(**{**values, **fields})  # type: ignore[arg-type]


def test_a_new_subscription_raises_one_alert_per_series_and_none_once_dismissed_or_for_installments():
    found = alerts.new_subscriptions([series(), series("old", is_new=False), series("gone", status="dismissed"),
                                      series("plan", kind="installment", remaining=3)], AlertSettings())
    assert [(a.key, a.title) for a in found] == [("new_subscription:s1", "New subscription: Netflix")]
    assert found[0].detail == "R$ 39,90 monthly, since Oct 5, 2026; next expected on Jan 5, 2027."
    assert alerts.new_subscriptions([series()], AlertSettings(disabled=frozenset({alerts.NEW_SUBSCRIPTION}))) == []


def test_a_price_change_raises_one_alert_per_change_with_both_prices():
    changes = (PriceChange(date(2026, 3, 5), Decimal("-39.90"), Decimal("-44.90")),
               PriceChange(date(2026, 9, 5), Decimal("-44.90"), Decimal("-55.90")))
    found = alerts.price_changes([series(price_changes=changes, is_new=False),
                                  series("plan", kind="installment", price_changes=changes)], AlertSettings())
    assert [a.key for a in found] == ["price_change:s1:2026-03-05", "price_change:s1:2026-09-05"]
    assert found[0].detail == "Went from R$ 39,90 to R$ 44,90 on Mar 5, 2026."
    both = alerts.evaluate(settings=AlertSettings(), today=date(2026, 12, 7), series=[series(price_changes=changes)])
    assert {a.kind for a in both} == {alerts.NEW_SUBSCRIPTION, alerts.PRICE_CHANGE}


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(1, 5000), st.sampled_from(["BRL", "USD"]),
                          st.integers(0, 10)), max_size=30))
def test_evaluating_the_same_facts_again_gives_the_same_keys_and_never_two_alerts_with_one_key(facts):
    rows = [expense(tid, f"-{amount}", currency, TODAY - timedelta(days=age)) for tid, amount, currency, age in facts]
    first = alerts.evaluate(settings=AlertSettings(), today=TODAY, large=rows)
    again = alerts.evaluate(settings=AlertSettings(), today=TODAY, large=list(reversed(rows)))
    assert len({a.key for a in first}) == len(first)
    assert {a.key for a in first} == {a.key for a in again}


@pytest.mark.parametrize("typed", ["", "abc", "-5", "0", "1e400", "NaN", "Infinity", "12.345", "１０００",
                                   "99999999999999999", "1000; DROP TABLE alerts", HOSTILE])
def test_a_threshold_that_is_not_an_amount_is_refused_with_a_clear_message(typed):
    with pytest.raises(AlertSettingsError, match="Nothing was changed"):
        alerts.clean_threshold("BRL", typed)


def test_a_threshold_accepts_a_comma_as_the_decimal_separator():
    assert alerts.clean_threshold("BRL", " 2500,50 ") == Decimal("2500.50")
    with pytest.raises(AlertSettingsError, match="currency code"):
        alerts.clean_threshold("<b>", "10")


# --- the store and svc.alerts on the demo banks ---------------------------------------------------------------

def services_on(folder: Path, smtp: SmtpSettings | None = None) -> Services:
    """Services on a copy of the demo store (`demo_copy`) in `folder`, e-mailing through `smtp`."""
    settings = load_settings({"FINANCE_DATA_DIR": str(folder), "FINANCE_SANDBOX_SETTLE_SECONDS": "0",
                              "FINANCE_DATABASE_URL": os.environ.get("FINANCE_DATABASE_URL", "")},
                             secrets_file=folder / "none.toml")
    return open_services(settings.__class__(**{**settings.__dict__, "smtp": smtp}))


@pytest.fixture
def svc(demo_copy: Path) -> Iterator[Services]:
    services = services_on(demo_copy)
    yield services
    services.engine.dispose()


def latest_expense(svc: Services) -> tuple[str, date]:
    with svc.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT id, booked_date FROM transactions WHERE amount < 0 AND status = 'posted' "
                                   "AND currency = 'BRL' ORDER BY booked_date DESC, id LIMIT 1")).one()
    return row.id, row.booked_date


def make_large(svc: Services, merchant: str = HOSTILE) -> str:
    """The newest posted BRL expense becomes a R$ 5.000,00 purchase from `merchant`, booked today."""
    tid, _ = latest_expense(svc)
    with svc.engine.begin() as conn:
        conn.execute(sa.text("UPDATE transactions SET amount = -5000, merchant = :m, booked_date = :d, category = "
                             "'shopping', user_category = NULL WHERE id = :id"),
                     {"m": merchant, "d": datetime.now(UTC).date(), "id": tid})
    return tid


def test_evaluate_raises_each_alert_once_and_the_unread_count_follows_mark_read(svc: Services):
    tid = make_large(svc)
    first = svc.alerts.evaluate()
    assert first.raised >= 1 and first.emailed == 0
    assert svc.alerts.evaluate().raised == 0  # the same facts again: nothing new
    listing = svc.alerts.list()
    mine = listing[listing["key"] == f"large_transaction:{tid}"].iloc[0]
    assert mine["title"] == f"Large transaction: R$ 5.000,00 at {HOSTILE}"
    assert mine["email_state"] is None  # no SMTP configured: never e-mailed, even once SMTP is set up later
    unread = svc.alerts.unread_count()
    assert svc.alerts.mark_read(mine["key"], actor="tester") == "Marked as read."
    assert svc.alerts.mark_read(mine["key"], actor="tester") == "That alert was already read."
    assert svc.alerts.unread_count() == unread - 1
    assert svc.alerts.mark_all_read(actor="tester").startswith("Marked") == (unread > 1)
    assert svc.alerts.mark_all_read(actor="tester") == "No unread alerts."
    assert svc.alerts.unread_count() == 0
    with svc.engine.connect() as conn:
        audited = conn.execute(sa.text("SELECT COUNT(*) FROM audit_log WHERE action = 'mark_alerts_read'")).scalar()
    assert audited >= 1


def test_settings_turn_a_kind_off_and_set_a_threshold_audited_and_bad_input_changes_nothing(svc: Services):
    tid = make_large(svc)
    assert svc.alerts.save_settings({alerts.LARGE_TRANSACTION: False}, {}, actor="tester") == "Alert settings saved."
    svc.alerts.evaluate()
    assert f"large_transaction:{tid}" not in set(svc.alerts.list()["key"])
    before = svc.alerts.settings()
    with pytest.raises(AlertSettingsError):
        svc.alerts.save_settings({alerts.LARGE_TRANSACTION: True}, {"BRL": "-1"}, actor="tester")
    with pytest.raises(AlertSettingsError, match="Unknown kind"):
        svc.alerts.save_settings({"<script>": True}, {}, actor="tester")
    assert svc.alerts.settings() == before
    svc.alerts.save_settings({alerts.LARGE_TRANSACTION: True}, {"BRL": "6000"}, actor="tester")
    assert svc.alerts.settings().threshold("BRL") == Decimal("6000.00")
    svc.alerts.evaluate()
    assert f"large_transaction:{tid}" not in set(svc.alerts.list()["key"])  # R$ 5.000 is under R$ 6.000 now
    assert svc.alerts.save_settings({}, {"BRL": "6000.00"}, actor="tester") == "Nothing to change."
    with svc.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM audit_log WHERE action = 'alert_settings'")).scalar() == 2


def test_a_connection_that_needs_reconnecting_raises_an_alert_after_its_sync(svc: Services):
    with svc.engine.begin() as conn:
        cid = conn.execute(sa.text("SELECT id FROM connections ORDER BY created_at LIMIT 1")).scalar_one()
        conn.execute(sa.text("UPDATE connections SET status = 'needs_reconnect', status_detail = 'Log in again.' "
                             "WHERE id = :id"), {"id": cid})
    svc.alerts.after_sync()
    keys = [k for k in svc.alerts.list()["key"] if k.startswith(f"reconnect:{cid}:")]
    assert len(keys) == 1


def test_an_over_budget_category_raises_an_alert(svc: Services):
    month = datetime.now(UTC).date().replace(day=1)
    make_large(svc, "Big Store")  # R$ 5.000 of shopping this month
    svc.budgets.set(month, "shopping", "BRL", "100", actor="tester")
    svc.alerts.evaluate()
    assert f"over_budget:{month:%Y-%m}:shopping:BRL" in set(svc.alerts.list()["key"])


def test_a_new_subscription_in_the_store_raises_an_alert(svc: Services):
    """Three monthly payments of R$ 29,90 to a merchant never seen before: the recurring detection finds a new
    subscription, and evaluate raises its alert once."""
    today = datetime.now(UTC).date()
    with svc.engine.connect() as conn:
        template = conn.execute(sa.text(
            "SELECT * FROM transactions WHERE currency = 'BRL' AND amount < 0 AND status = 'posted' "
            "AND deleted_at IS NULL ORDER BY booked_date DESC LIMIT 1")).mappings().one()
    with svc.engine.begin() as conn:
        for months_ago in (2, 1, 0):
            day = (today.replace(day=1) - timedelta(days=28 * months_ago)).replace(day=3)
            row = {**template, "id": f"{template['id']}-s{months_ago}", "external_id": f"streamflix-{months_ago}",
                   "amount": Decimal("-29.90"), "merchant": "Streamflix", "description": "STREAMFLIX",
                   "booked_date": day, "category": "entertainment.streaming", "user_category": None,
                   "pending_id": None, "installment_number": None, "installment_total": None}
            conn.execute(sa.insert(sa.table("transactions", *[sa.column(c) for c in row])).values(**row))
    found = [s for s in svc.recurring.series(today) if s.merchant == "Streamflix"]
    assert found and found[0].kind == "subscription"
    svc.alerts.evaluate()
    keys = set(svc.alerts.list()["key"])
    assert f"new_subscription:{found[0].key}" in keys


def test_the_sync_on_connections_evaluates_the_alerts(svc: Services):
    with svc.engine.connect() as conn:
        cid = conn.execute(sa.text("SELECT id FROM connections ORDER BY created_at LIMIT 1")).scalar_one()
    make_large(svc)
    assert svc.connections.sync(cid, trigger="manual").outcome == "success"
    assert svc.alerts.unread_count() >= 1


# --- e-mail through a real SMTP server on 127.0.0.1 -----------------------------------------------------------

class Inbox:
    """An aiosmtpd handler that keeps what it receives, or refuses every message while `refuse` is set."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse = False

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        if self.refuse:
            return "451 4.3.0 Mailbox temporarily unavailable"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, SmtpSettings]]:
    inbox = Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=auth_data.login == b"alerts" and auth_data.password == PASSWORD.encode())

    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), auth_require_tls=False,
                            authenticator=authenticate)
    controller.start()
    yield inbox, SmtpSettings(host="127.0.0.1", port=controller.port, sender="alerts@example.com",
                              recipients=("me@example.com",), username="alerts", password=PASSWORD, starttls=False)
    controller.stop()


def test_new_alerts_are_emailed_once_as_plain_text_with_bank_text_only_in_the_body(
        demo_copy: Path, smtp_server: tuple[Inbox, SmtpSettings]):
    inbox, smtp = smtp_server
    svc = services_on(demo_copy, smtp)
    try:
        make_large(svc, f"{HOSTILE}\r\nBcc: victim@example.com")
        run = svc.alerts.evaluate()
        assert run.email_error is None and run.emailed == run.raised >= 1
        assert svc.alerts.evaluate().emailed == 0  # sent once
    finally:
        svc.engine.dispose()
    [message] = inbox.messages
    assert message["To"] == "me@example.com" and message["Bcc"] is None
    assert message["Subject"].startswith("Open Finance dashboard: ") and HOSTILE not in message["Subject"]
    assert message.get_content_type() == "text/plain" and not message.is_multipart()
    body = message.get_payload(decode=True).decode("utf-8")
    assert f"Large transaction: R$ 5.000,00 at {HOSTILE}" in body


def test_a_failing_smtp_server_is_recorded_and_retried_and_never_fails_a_sync_or_logs_the_password(
        demo_copy: Path, smtp_server: tuple[Inbox, SmtpSettings], caplog: pytest.LogCaptureFixture):
    inbox, smtp = smtp_server
    inbox.refuse = True
    svc = services_on(demo_copy, smtp)
    caplog.set_level(logging.DEBUG)
    try:
        make_large(svc)
        with svc.engine.connect() as conn:
            cid = conn.execute(sa.text("SELECT id FROM connections ORDER BY created_at LIMIT 1")).scalar_one()
        assert svc.connections.sync(cid, trigger="manual").outcome == "success"
        listing = svc.alerts.list()
        assert set(listing["email_state"]) == {"pending"}
        assert "451" in listing["email_error"].iloc[0]
        assert svc.alerts.evaluate().emailed == 0 and not inbox.messages  # waits EMAIL_RETRY_AFTER before retrying
        inbox.refuse = False
        later = svc.alerts.evaluate(datetime.now(UTC) + svc.alerts.EMAIL_RETRY_AFTER)
        assert later.emailed == len(listing) and len(inbox.messages) == 1
        assert set(svc.alerts.list()["email_state"]) == {"sent"}
    finally:
        svc.engine.dispose()
    assert "alert e-mail not sent" in caplog.text
    assert PASSWORD not in caplog.text and PASSWORD not in repr(smtp)


@pytest.mark.slow
def test_a_wrong_password_or_no_server_is_recorded_without_the_password(demo_copy: Path,
                                                                         smtp_server: tuple[Inbox, SmtpSettings]):
    _inbox, smtp = smtp_server
    for broken in (smtp.__class__(**{**smtp.__dict__, "password": "wrong-" + PASSWORD}),
                   smtp.__class__(**{**smtp.__dict__, "port": free_port()})):
        svc = services_on(demo_copy, broken)
        try:
            with svc.engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM alerts"))
            make_large(svc)
            run = svc.alerts.evaluate()
        finally:
            svc.engine.dispose()
        assert run.email_error and PASSWORD not in run.email_error, run.email_error


def test_smtp_settings_come_from_the_secrets_file_and_are_refused_when_incomplete(tmp_path: Path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[smtp]\nhost = "mail.example.com"\nusername = "u"\npassword = "p@ss"\n'
                       'from = "a@example.com"\nto = "b@example.com"\n')
    smtp = load_settings({}, secrets_file=secrets).smtp
    assert smtp == SmtpSettings("mail.example.com", 587, "a@example.com", ("b@example.com",), "u", "p@ss", True)
    assert "p@ss" not in repr(load_settings({}, secrets_file=secrets))
    assert load_settings({}, secrets_file=tmp_path / "absent.toml").smtp is None
    secrets.write_text('[smtp]\nhost = "mail.example.com"\nport = 99999\nfrom = "a@x"\nto = ["b@x"]\n')
    with pytest.raises(ValueError, match="port"):
        load_settings({}, secrets_file=secrets)
    secrets.write_text('[smtp]\nhost = "mail.example.com"\n')
    with pytest.raises(ValueError, match="needs host, from and to"):
        load_settings({}, secrets_file=secrets)


def test_the_store_keeps_the_first_alert_of_a_key(engine: sa.Engine):
    alert = alerts.Alert("large_transaction:x", alerts.LARGE_TRANSACTION, "first", "detail")
    with engine.begin() as conn:
        assert alert_store.raise_alerts(conn, [alert], email=True, now=NOW) == ["large_transaction:x"]
        again = alerts.Alert("large_transaction:x", alerts.LARGE_TRANSACTION, "second", "detail")
        assert alert_store.raise_alerts(conn, [again], email=True, now=NOW) == []
        assert list(alert_store.list_alerts(conn)["title"]) == ["first"]
        assert [a.key for a in alert_store.emails_due(conn, NOW, timedelta(minutes=10))] == ["large_transaction:x"]
