"""Wires settings, the store, the providers and the sync engine together (for the CLI and the app), and names the
operations the pages call.

Like Fava's ledger modules, `Services` carries small modules — `svc.reports`, `svc.transactions`, `svc.rates`,
`svc.connections`, `svc.status`, `svc.events`, `svc.console`… — each a named set of operations that opens its
own connection, so a page asks for what it shows and never holds a connection or picks a store module.

DuckDB lets one process hold a database file, so inside the app process everything — the pages, the webhook
routes and the background worker — must use the same engine: `shared_services` keeps one `Services` per settings
for the life of the process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal, TypeVar

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from finance import alerts as alert_rules
from finance import budgets, forecast, health, mailer, portfolio
from finance import recurring as recurring_series
from finance.analysts import Analytics, Console
from finance.cashflow import CashFlow, build_cash_flow
from finance.config import Settings, SmtpSettings, load_settings
from finance.crypto import SecretBox, load_or_create_key
from finance.file_import import FileImports
from finance.filters import TransactionFilter
from finance.health import StatusData
from finance.i18n import _, ngettext
from finance.money import Rate
from finance.providers.base import ConnectableProvider
from finance.providers.registry import build_providers
from finance.store import (
    account_links,
    accounts,
    connections,
    investments,
    liabilities,
    rates,
    reports,
    rules,
    sync_runs,
    transactions,
    webhook_events,
)
from finance.store import alerts as alert_store
from finance.store import budgets as budget_store
from finance.store import cashflow as cashflow_store
from finance.store import forecast as forecast_store
from finance.store import jobs as job_tables
from finance.store import preferences as preference_store
from finance.store import recurring as recurring_store
from finance.store.db import create_engine, init_schema, store_error
from finance.store.directory import Directory, claim_file, household_file
from finance.store.secrets import SecretStore
from finance.sync import Progress, SyncEngine, SyncResult

log = logging.getLogger(__name__)


T = TypeVar("T")


class StoreOperations:
    """A named set of operations on the store; each opens (and closes) its own connection."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def _read(self, query: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`query(conn, *args, **kwargs)` on a connection of its own."""
        with self._engine.connect() as conn:
            return query(conn, *args, **kwargs)


class Accounts(StoreOperations):
    """Every account and the balances now."""

    def summary(self) -> pd.DataFrame:
        """Every account with its institution and balance."""
        return self._read(accounts.accounts_summary)

    def totals(self) -> pd.DataFrame:
        """Assets, liabilities and net worth now, one row per currency."""
        return self._read(accounts.balance_totals)


class Reports(StoreOperations):
    """The figures of the Overview and Money pages, always per currency."""

    def data_as_of(self) -> datetime | None:
        """When the store last received data from any provider."""
        return self._read(reports.data_as_of)

    def as_of_by_currency(self) -> dict[str, datetime | None]:
        """Per currency, when its data was last refreshed."""
        return self._read(reports.as_of_by_currency)

    def net_worth_by_day(self, start: date, end: date, *, account_types: tuple[str, ...] = ()) -> pd.DataFrame:
        """End-of-day net worth per currency (of the accounts of `account_types`, e.g. ("loan",); empty: all)."""
        return self._read(reports.net_worth_by_day, start, end, account_types)

    def monthly_cashflow(self, start: date, end: date, *, include_pending: bool = True) -> pd.DataFrame:
        """Income and spending per month and currency."""
        return self._read(reports.monthly_cashflow, start, end, include_pending=include_pending)

    def daily_flows(self, start: date, end: date, *, include_pending: bool = True) -> pd.DataFrame:
        """Income and spending per day and currency."""
        return self._read(reports.daily_flows, start, end, include_pending=include_pending)

    def spending_by_category(self, start: date, end: date, *, include_pending: bool = True) -> pd.DataFrame:
        """Net spending per top-level category and currency."""
        return self._read(reports.spending_by_category, start, end, include_pending=include_pending)

    def period_figures(self, start: date, end: date, previous_start: date, *,
                       include_pending: bool = True) -> pd.DataFrame:
        """Income, spending and the largest expense of the period and the one before, per currency."""
        return self._read(reports.period_figures, start, end, previous_start, include_pending=include_pending)

    def top_merchants(self, start: date, end: date, *, include_pending: bool = True) -> pd.DataFrame:
        """The merchants with the most net spending in the period, per currency."""
        return self._read(reports.top_merchants, start, end, include_pending=include_pending)

    def cash_flow(self, start: date, end: date, currency: str, *, include_pending: bool = True) -> CashFlow:
        """The period's cash flow in one currency, as the Sankey shows it (balanced: inflow = outflow)."""
        rows = self._read(cashflow_store.cash_flow, start, end, currency, include_pending=include_pending)
        return build_cash_flow(rows.to_dict("records"), currency)

    def cash_flow_currencies(self, start: date, end: date, *, include_pending: bool = True) -> list[str]:
        """The currencies with income or spending in the period."""
        return self._read(cashflow_store.flow_currencies, start, end, include_pending=include_pending)

    def flow_transactions(self, start: date, end: date, currency: str, flow_keys: tuple[str, ...], *,
                          include_pending: bool = True, limit: int = 200) -> tuple[pd.DataFrame, int]:
        """The newest transactions behind a cash-flow link, and how many there are in all."""
        return self._read(cashflow_store.flow_transactions, start, end, currency, flow_keys,
                          include_pending=include_pending, limit=limit)


class Transactions(StoreOperations):
    """The Transactions page: the filtered view, its options and exports, and the user's edits (each returns a
    sentence for the user, or raises EditError and changes nothing)."""

    MAX_NOTE_LENGTH = transactions.MAX_NOTE_LENGTH

    def date_range(self) -> tuple[date | None, date | None]:
        """The first and last booked date of the live transactions."""
        return self._read(transactions.transaction_date_range)

    def account_options(self) -> pd.DataFrame:
        """Accounts with a readable label, for the filter."""
        return self._read(transactions.account_options)

    def category_options(self) -> pd.DataFrame:
        """Categories with a readable label, parents before their children."""
        return self._read(transactions.category_options)

    def page(self, filters: TransactionFilter, *, limit: int = 50, offset: int = 0) -> transactions.TransactionPage:
        """One page of the filtered view, its row count and its totals per currency."""
        return self._read(transactions.transaction_page, filters, limit=limit, offset=offset)

    def export(self, filters: TransactionFilter, kind: Literal["csv", "parquet"]) -> bytes:
        """The whole filtered view as CSV or Parquet, built in memory."""
        table: pa.Table = self._read(transactions.export_table, filters)
        return transactions.to_csv(table) if kind == "csv" else transactions.to_parquet(table)

    def set_category(self, transaction_id: str, category: str | None, *, as_rule: bool = False,
                     actor: str) -> str:
        """Set (None: remove) the user's own category, or make it the merchant's rule."""
        return transactions.set_category(self._engine, transaction_id, category, as_rule=as_rule, actor=actor)

    def save_edits(self, transaction_id: str, *, category: str, note: str | None, as_rule: bool = False,
                   actor: str) -> str:
        """What the edit form holds (category, note), in one transaction."""
        return transactions.save_edits(self._engine, transaction_id, category=category, note=note,
                                       as_rule=as_rule, actor=actor)

    def delete(self, transaction_id: str, *, actor: str) -> str:
        """Hide a transaction everywhere; no re-sync brings it back."""
        return transactions.delete_transaction(self._engine, transaction_id, actor=actor)

    def restore(self, transaction_id: str, *, actor: str) -> str:
        """Undo a deletion."""
        return transactions.restore_transaction(self._engine, transaction_id, actor=actor)


class Rules(StoreOperations):
    """The merchant → category rules."""

    def all(self) -> pd.DataFrame:
        """The rules in force, with how many transactions each decides."""
        return self._read(rules.list_rules)

    def delete(self, rule_id: str, *, actor: str) -> str:
        """Remove a rule; returns a sentence for the user."""
        return rules.delete_rule(self._engine, rule_id, actor=actor)


class Rates(StoreOperations):
    """The exchange rates the user enters; every change is audited."""

    def all(self) -> list[Rate]:
        """Every rate, newest date first."""
        return self._read(rates.exchange_rates)

    def add(self, rate: Rate, *, actor: str) -> str:
        """Store a validated rate; its id. RateError when the pair has one that day."""
        return rates.add_exchange_rate(self._engine, rate, actor=actor)

    def update(self, rate_id: str, rate: Rate, *, actor: str) -> bool:
        """Replace a rate's values; False when nothing differs."""
        return rates.update_exchange_rate(self._engine, rate_id, rate, actor=actor)

    def delete(self, rate_id: str, *, actor: str) -> Rate:
        """Remove a rate; returns what was removed."""
        return rates.delete_exchange_rate(self._engine, rate_id, actor=actor)


class Connections(StoreOperations):
    """The bank connections: their state, and a sync of one of them."""

    def __init__(self, engine: sa.Engine, sync: SyncEngine, *, after_sync: Callable[[], None] | None = None) -> None:
        super().__init__(engine)
        self._sync = sync
        self._after_sync = after_sync  # alerts are evaluated after every sync

    def status(self) -> pd.DataFrame:
        """Every connection with its accounts count and its latest sync run."""
        return self._read(connections.connections_status)

    def schedule_rows(self) -> list[dict[str, Any]]:
        """Every connection with what its health and schedule are derived from (for the banner)."""
        return self._read(connections.schedule_rows)

    def sync(self, connection_id: str, *, trigger: str, on_progress: Progress | None = None) -> SyncResult:
        """Sync one connection now, then evaluate the alerts."""
        result = self._sync.sync_connection(connection_id, trigger=trigger, on_progress=on_progress)
        if self._after_sync is not None and result.outcome != "skipped":
            self._after_sync()
        return result


    def continue_history(self, old_connection_id: str, new_connection_id: str, *, actor: str) -> str:
        """After a reconnect through another connector (a retired one's Open Finance successor): the new
        connection's accounts continue the old one's history. A sentence for the user; EditError when refused."""
        pairs = self._sync.continue_history(old_connection_id, new_connection_id, actor=actor)
        if not pairs:
            return _("No account of the new connection matches one of the old: their histories stay apart.")
        return ngettext("{count} account of the new connection continues the old one's history.",
                        "{count} accounts of the new connection continue the old one's history.", len(pairs)).format(
            count=len(pairs))

    def links(self) -> pd.DataFrame:
        """Accounts continued by a newer connection's, with the day each takes over."""
        return self._read(account_links.links)


class Holdings(StoreOperations):
    """Investments, loans and card bills (issue 19) as the Investments, Loans and Card bills pages show them."""

    def positions(self) -> pd.DataFrame:
        """Every holding now: quantity, price, value, cost basis and gain."""
        return self._read(investments.holdings_frame)

    def trades(self, start: date, end: date) -> pd.DataFrame:
        """Investment transactions in the period, newest first."""
        return self._read(investments.investment_transactions_frame, start, end)

    def loans(self) -> pd.DataFrame:
        """Loans, mortgages and cards with their terms and next payment."""
        return self._read(liabilities.loans_frame)

    def card_bills(self, today: date) -> list[portfolio.CardBills]:
        """Each card's current and next bill."""
        frame = self._read(liabilities.bills_frame)
        return portfolio.card_bills([portfolio.Bill(
            r.id, r.account_id, f"{r.card} ••{r.mask}" if r.mask else r.card, r.due_date, Decimal(r.total),
            r.currency, None if pd.isna(r.closing_date) else r.closing_date,
            None if pd.isna(r.minimum_payment) else Decimal(r.minimum_payment),
            None if pd.isna(r.is_paid) else bool(r.is_paid)) for r in frame.itertuples()], today)

    def problems(self) -> pd.DataFrame:
        """Portfolio resources whose last read failed, with why."""
        return self._read(liabilities.portfolio_problems)


class Status(StoreOperations):
    """The Sync status page's data."""

    def read(self) -> StatusData:
        """Connections and their recent sync runs."""
        return self._read(sync_runs.read_status)

    def queue(self) -> job_tables.QueueCounts | None:
        """The job queue every app process and worker shares (PostgreSQL after `db upgrade`); None on DuckDB,
        where the app's own worker is the background work (finance.worker)."""
        return self._read(lambda conn: job_tables.queue_counts(conn) if job_tables.has_queue(conn) else None)

    def data_version(self) -> str:
        """Changes whenever a sync ends or a webhook event is answered, by any process (pages rerun on it)."""
        return self._read(sync_runs.data_version)


class Events(StoreOperations):
    """The webhook events log."""

    def recent(self, limit: int = 50) -> pd.DataFrame:
        """The newest webhook events with the institution they concern (no payloads)."""
        return self._read(webhook_events.recent_events, limit)


class Alerts(StoreOperations):
    """Alerts: the rules (finance.alerts) evaluated on the store's facts after every sync and when the Alerts page
    opens, the list with unread counts, mark read, the per-kind settings, and the e-mails when SMTP is configured.
    A failing SMTP server never fails a sync or a page: the attempt is recorded and retried EMAIL_RETRY_AFTER on."""

    KINDS = alert_rules.KINDS
    EMAIL_RETRY_AFTER = timedelta(minutes=10)

    def __init__(self, engine: sa.Engine, smtp: SmtpSettings | None, *,
                 budget_lines: Callable[[date], list[budgets.BudgetLine]],
                 series: Callable[[date], list[recurring_series.Series]]) -> None:
        super().__init__(engine)
        self._smtp = smtp
        self._budget_lines = budget_lines  # the month's budget against posted spending
        self._series = series  # the recurring series the user has not dismissed
        self._lock = threading.Lock()  # one evaluation at a time: an alert is raised and e-mailed once

    def evaluate(self, now: datetime | None = None) -> alert_rules.AlertRun:
        """Raise the alerts the facts call for (each key once), then e-mail those waiting for it."""
        moment = now or datetime.now(UTC)
        with self._lock:
            with self._engine.connect() as conn:
                settings = alert_store.read_settings(conn)
                floor = min([*settings.thresholds.values(), *alert_rules.DEFAULT_THRESHOLDS.values(),
                             alert_rules.FALLBACK_THRESHOLD])
                large = alert_store.large_transaction_facts(conn, moment.date() - alert_rules.LARGE_LOOKBACK, floor)
                rows = connections.schedule_rows(conn)
            over = self._budget_lines(moment.date()) if settings.enabled(alert_rules.OVER_BUDGET) else []
            wanted = settings.enabled(alert_rules.NEW_SUBSCRIPTION) or settings.enabled(alert_rules.PRICE_CHANGE)
            series = self._series(moment.date()) if wanted else []
            found = alert_rules.evaluate(
                settings=settings, today=moment.date(), large=large,
                reconnect_items=health.banner_items(rows, moment),
                episodes={row["id"]: row["last_success_at"] for row in rows}, budget_lines=over, series=series)
            with self._engine.begin() as conn:
                raised = alert_store.raise_alerts(conn, found, email=self._smtp is not None, now=moment)
            emailed, error = self._send_due(moment)
        return alert_rules.AlertRun(raised=len(raised), emailed=emailed, email_error=error)

    def _send_due(self, now: datetime) -> tuple[int, str | None]:
        if self._smtp is None:
            return 0, None
        with self._engine.connect() as conn:
            due = alert_store.emails_due(conn, now, self.EMAIL_RETRY_AFTER)
        if not due:
            return 0, None
        try:
            mailer.send_alerts(self._smtp, due)
            error = None
        except mailer.SmtpFailed as exc:
            error = str(exc)
            log.warning("alert e-mail not sent (retried in %s): %s", self.EMAIL_RETRY_AFTER, error)
        with self._engine.begin() as conn:
            alert_store.record_email(conn, [a.key for a in due], error=error, now=now)
        return (0 if error else len(due)), error

    def after_sync(self) -> None:
        """Evaluate after a sync; a failure here is logged and never fails the sync that called it."""
        try:
            self.evaluate()
        except Exception:
            log.exception("alerts were not evaluated after a sync; the next sync or the Alerts page retries")

    def list(self, *, unread_only: bool = False, limit: int = 200) -> pd.DataFrame:
        """The newest alerts first (title and detail are plain text holding bank text)."""
        return self._read(alert_store.list_alerts, unread_only=unread_only, limit=limit)

    def unread_count(self) -> int:
        """How many alerts are unread."""
        return self._read(alert_store.unread_count)

    def mark_read(self, key: str, *, actor: str) -> str:
        """Mark one alert read; a sentence for the user."""
        done = alert_store.mark_read(self._engine, [key], actor=actor, now=datetime.now(UTC))
        return _("Marked as read.") if done else _("That alert was already read.")

    def mark_all_read(self, *, actor: str) -> str:
        """Mark every unread alert read; a sentence for the user."""
        done = alert_store.mark_read(self._engine, None, actor=actor, now=datetime.now(UTC))
        return ngettext("Marked {count} alert as read.", "Marked {count} alerts as read.", done).format(count=done) \
            if done else _("No unread alerts.")

    def settings(self) -> alert_rules.AlertSettings:
        """Which kinds are off and the thresholds the user set."""
        return self._read(alert_store.read_settings)

    def currencies(self) -> list[str]:
        """The currencies a large-transaction threshold applies to: the accounts' and those already set."""
        return sorted({*self._read(alert_store.account_currencies), *self.settings().thresholds}) or sorted(
            alert_rules.DEFAULT_THRESHOLDS)

    def save_settings(self, enabled: dict[str, bool], thresholds: dict[str, Any], *, actor: str) -> str:
        """Turn kinds on or off and set thresholds per currency; AlertSettingsError (nothing changed) on bad input."""
        unknown = sorted(set(enabled) - set(self.KINDS))
        if unknown:
            raise alert_rules.AlertSettingsError(_("Unknown kind of alert {kind}. Nothing was changed.").format(
                kind=repr(unknown[0])))
        current = self.settings()
        disabled = {k for k in self.KINDS if not enabled.get(k, current.enabled(k))}
        cleaned = {**current.thresholds, **{c: alert_rules.clean_threshold(c, v) for c, v in thresholds.items()}}
        changed = alert_store.save_settings(
            self._engine, alert_rules.AlertSettings(frozenset(disabled), cleaned), actor=actor, now=datetime.now(UTC))
        return _("Alert settings saved.") if changed else _("Nothing to change.")


class Budgets(StoreOperations):
    """Monthly budgets per category and currency, against actual spending; every change is audited. Refused input
    raises BudgetError (finance.budgets) and changes nothing."""

    def __init__(self, engine: sa.Engine, today: Callable[[], date] = date.today) -> None:
        super().__init__(engine)
        self._today = today

    def of_month(self, month: date) -> list[budgets.Budget]:
        """The budgets set for the month of `month`."""
        return self._read(budget_store.budgets_of_month, budgets.first_of_month(month))

    def set(self, month: date, category: str, currency: str, amount: str | Decimal, *, rollover: bool = False,
            actor: str) -> str:
        """Validate and set (or replace) one budget; a sentence for the user."""
        budget = budgets.clean_budget(month, category, currency, amount, rollover=rollover, today=self._today())
        return budget_store.set_budget(self._engine, budget, actor=actor)

    def delete(self, budget_id: str, *, actor: str) -> str:
        """Remove one budget; a sentence for the user."""
        return budget_store.delete_budget(self._engine, budget_id, actor=actor)

    def copy_last_month(self, month: date, *, actor: str) -> str:
        """Copy the previous month's budgets into `month`, keeping those already set; a sentence for the user."""
        return budget_store.copy_last_month(self._engine, budgets.clean_month(month, self._today()), actor=actor)

    def _figures(self, conn: sa.Connection, month: date, include_pending: bool
                 ) -> tuple[list[budgets.Budget], dict[tuple[str, str, date], Decimal], dict[str, str]]:
        """The budgets up to `month`, the spending they need (one query) and the category names."""
        found = budget_store.budgets_until(conn, month)
        start = budgets.needed_from(found, month)
        spent = budget_store.actual_spending(conn, start, budgets.last_of_month(month),
                                             include_pending=include_pending)
        return found, spent, budget_store.category_names(conn)

    def month_view(self, month: date, *, include_pending: bool) -> list[budgets.BudgetLine]:
        """Per category and currency, the month's budget (with what rollover carried in) against net spending, what
        is left, whether it is over, and what is left per day for the rest of the month."""
        first = budgets.first_of_month(month)
        with self._engine.connect() as conn:
            found, spent, names = self._figures(conn, first, include_pending)
        return budgets.budget_lines(found, spent, first, self._today(), names)

    def year_view(self, month: date, *, include_pending: bool) -> list[budgets.BudgetLine]:
        """Per category and currency, the budgets of January through `month` against the spending of those months."""
        first = budgets.first_of_month(month)
        with self._engine.connect() as conn:
            found, spent, names = self._figures(conn, first, include_pending)
        return budgets.year_lines(found, spent, first, names)


class Recurring(StoreOperations):
    """Recurring payments, subscriptions and installment plans detected from the history (finance.recurring), with
    the user's choices (confirm, dismiss, edit) laid over them by series key; every choice is audited. Refused input
    raises RecurringError and changes nothing."""

    def series(self, today: date, include_dismissed: bool = False, *,
               include_pending: bool = True) -> list[recurring_series.Series]:
        """Every series as of `today`, with the user's choices applied; dismissed ones only when asked for."""
        with self._engine.connect() as conn:
            rows = recurring_store.candidate_rows(conn, include_pending=include_pending)
            chosen = recurring_store.choices(conn)
        return recurring_series.apply_choices(recurring_series.detect(rows, today), chosen,
                                              include_dismissed=include_dismissed)

    def choose(self, series: recurring_series.Series, status: str, *, name: str | None = None,
               amount: str | None = None, cadence: str | None = None, actor: str) -> str:
        """Confirm, dismiss or edit (name, amount, cadence) one series; a sentence for the user."""
        choice = recurring_series.clean_choice(series.key, status, name=name, amount=amount, cadence=cadence,
                                               outflow=series.amount < 0)
        if not recurring_store.save_choice(self._engine, choice, actor=actor):
            return _("Nothing to change.")
        label = choice.name or series.merchant
        return {"confirmed": _("{name}: confirmed."), "dismissed": _("{name}: dismissed; it stays hidden."),
                "detected": _("{name}: saved.")}[choice.status].format(name=label)

    def transactions(self, series: recurring_series.Series) -> pd.DataFrame:
        """The transactions of one series, newest first."""
        return self._read(recurring_store.series_transactions, series.transaction_ids)


class Forecast(StoreOperations):
    """Each account's balance ahead from its recurring series (finance.forecast), with warnings, and the
    thresholds the user sets per account (validated; every change audited)."""

    HORIZONS = forecast.HORIZONS

    def __init__(self, engine: sa.Engine, series: Callable[[date], list[recurring_series.Series]]) -> None:
        super().__init__(engine)
        self._series = series

    def outlook(self, today: date, days: int) -> forecast.Outlook:
        """Every account's balance from today to `days` ahead (card bills scheduled from their payment history), and
        the first day each goes below its floor."""
        with self._engine.connect() as conn:
            accounts = forecast_store.forecast_accounts(conn)
            thresholds = forecast_store.thresholds(conn)
            card_history = forecast_store.card_histories(conn, today)
        return forecast.outlook(accounts, self._series(today), thresholds, today, days, card_history=card_history)

    def set_threshold(self, account_id: str, text: str, *, actor: str) -> str:
        """Set the threshold the user typed for an account (empty removes it); a sentence for the user.
        ThresholdError or EditError say what is wrong and change nothing."""
        threshold = forecast.clean_threshold(text)
        if not forecast_store.set_threshold(self._engine, account_id, threshold, actor=actor):
            return _("Nothing to change.")
        return _("Threshold removed.") if threshold is None else _("Threshold saved.")


class Preferences(StoreOperations):
    """Each person's settings, such as the interface language."""

    def get(self, user_id: str, name: str) -> str | None:
        return self._read(preference_store.get_preference, user_id, name)

    def set(self, user_id: str, name: str, value: str) -> None:
        with self._engine.begin() as conn:
            preference_store.set_preference(conn, user_id, name, value)


@dataclass(frozen=True)
class Services:
    """The settings, the store's engine, the providers and the sync engine, and the operations hung off them."""

    settings: Settings
    engine: sa.Engine
    providers: dict[str, ConnectableProvider]
    sync: SyncEngine
    secrets: SecretStore
    webhook_secret: str = field(default="", repr=False)  # the header secret webhooks carry, where a provider sends one
    directory: Directory | None = None  # which household each connection is in (finance.store.directory)

    @property
    def household(self) -> str:
        """The household whose store these services open (settings.household)."""
        return self.settings.household

    @cached_property
    def accounts(self) -> Accounts:
        return Accounts(self.engine)

    @cached_property
    def reports(self) -> Reports:
        return Reports(self.engine)

    @cached_property
    def transactions(self) -> Transactions:
        return Transactions(self.engine)

    @cached_property
    def rules(self) -> Rules:
        return Rules(self.engine)

    @cached_property
    def rates(self) -> Rates:
        return Rates(self.engine)

    @cached_property
    def connections(self) -> Connections:
        return Connections(self.engine, self.sync, after_sync=self.after_sync)

    @cached_property
    def holdings(self) -> Holdings:
        return Holdings(self.engine)

    @cached_property
    def status(self) -> Status:
        return Status(self.engine)

    @cached_property
    def events(self) -> Events:
        return Events(self.engine)

    @cached_property
    def forecast(self) -> Forecast:
        return Forecast(self.engine, self.recurring.series)

    @cached_property
    def console(self) -> Console:
        return Console(self.engine, self.settings.household_dir)

    @cached_property
    def alerts(self) -> Alerts:
        return Alerts(self.engine, self.settings.smtp,
                      budget_lines=lambda month: self.budgets.month_view(month, include_pending=False),
                      series=self.recurring.series)

    @cached_property
    def analytics(self) -> Analytics:
        return Analytics(self.engine, self.settings.household_dir)

    def after_sync(self) -> None:
        """What follows every sync, wherever it ran: the alerts are evaluated and the analysts' snapshot rewritten."""
        self.alerts.after_sync()
        self.analytics.refresh()

    @cached_property
    def budgets(self) -> Budgets:
        return Budgets(self.engine)

    @cached_property
    def recurring(self) -> Recurring:
        return Recurring(self.engine)

    @cached_property
    def imports(self) -> FileImports:
        return FileImports(self.engine)

    @cached_property
    def preferences(self) -> Preferences:
        return Preferences(self.engine)


def webhook_secret(settings: Settings, key: bytes) -> str:
    """FINANCE_WEBHOOK_SECRET, else a secret derived from the encryption key (stable across restarts, never stored
    on its own; it changes when the key does, and the app then registers the new one at start-up)."""
    if settings.webhook_secret:
        return settings.webhook_secret
    return hmac.new(key, b"finance/webhook-secret/v2", hashlib.sha256).hexdigest()


def open_services(settings: Settings | None = None) -> Services:
    """Open the store (bringing its schema up to date), the providers and the sync engine, and close the sync runs
    a killed process left running. A store that cannot be opened raises StoreError (finance.store.db), a key that
    cannot be read SecretError (finance.crypto): each says what to do."""
    settings = settings or load_settings()
    store_file = household_file(settings)  # created private, its rows claimed for the household
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size, household=settings.household)
    try:
        init_schema(engine, upgrade=False)  # DuckDB upgrades itself; PostgreSQL must be upgraded on purpose
        if store_file is not None:
            claim_file(engine, store_file, settings.household)
    except Exception as exc:
        engine.dispose()
        problem = store_error(exc)
        if problem is None:
            raise
        raise problem from exc
    key = load_or_create_key(settings.encryption_key, settings.data_dir)
    secrets = SecretStore(engine, SecretBox(key))
    providers = build_providers(settings, secrets)
    local = (lambda: engine) if store_file is None else lambda: shared_services(settings.local()).engine
    directory = Directory(local, settings.household)
    sync = SyncEngine(engine, providers, secrets=secrets, directory=directory)
    try:
        sync.close_interrupted_runs()
    except Exception as exc:  # a full or read-only store can still be read: its runs are closed next time
        problem = store_error(exc)
        if problem is None:
            raise
        log.warning("could not close interrupted sync runs: %s", problem.code)
    return Services(settings=settings, engine=engine, providers=providers, sync=sync, secrets=secrets,
                    webhook_secret=webhook_secret(settings, key), directory=directory)


_shared: dict[Settings, Services] = {}
_shared_lock = threading.Lock()


def shared_services(settings: Settings | None = None) -> Services:
    """The process's one `Services` for these settings (the app's pages, webhook routes and worker share it)."""
    settings = settings or load_settings()
    with _shared_lock:
        found = _shared.get(settings)
        if found is None:
            found = _shared[settings] = open_services(settings)
        return found


def household_services(services: Services, household: str) -> Services:
    """`services` for its own household; the process's shared services of any other household (webhooks and
    background syncs reach a connection's household this way)."""
    return services if household == services.household else shared_services(services.settings.for_household(household))
