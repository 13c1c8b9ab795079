"""Which alerts exist, given the facts: pure rules with no Streamlit and no SQL.

Each alert carries a stable dedupe key (`large_transaction:<transaction id>`, `reconnect:<connection>:<episode>`,
`over_budget:2026-12:food:BRL`…), so evaluating the same facts again raises nothing new: the store keeps the first
alert of each key. Texts hold bank text (merchants, descriptions, institution names) verbatim; whoever shows them
must show them as text, never as Markdown or HTML, and e-mail them as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from finance.budgets import BudgetLine
from finance.formatting import format_money
from finance.i18n import N_, LazyText, _, format_long_month, format_short_day
from finance.recurring import CADENCE_LABELS, Series

LARGE_TRANSACTION = "large_transaction"
OVER_BUDGET = "over_budget"
NEW_SUBSCRIPTION = "new_subscription"
PRICE_CHANGE = "price_change"
RECONNECT = "reconnect"
KINDS: dict[str, LazyText] = {  # kind: what the settings call it
    LARGE_TRANSACTION: N_("Large transaction"),
    OVER_BUDGET: N_("Category over budget"),
    NEW_SUBSCRIPTION: N_("New subscription"),
    PRICE_CHANGE: N_("Subscription price change"),
    RECONNECT: N_("Connection needs reconnecting"),
}

DEFAULT_THRESHOLDS: dict[str, Decimal] = {
    "BRL": Decimal("1000.00"), "USD": Decimal("500.00"), "EUR": Decimal("500.00"), "GBP": Decimal("400.00"),
}
FALLBACK_THRESHOLD = Decimal("1000.00")
"""The large-transaction threshold of a currency the user has not set and DEFAULT_THRESHOLDS does not list."""
MAX_THRESHOLD = Decimal("9999999999999999.99")  # what DECIMAL(18,2) holds
LARGE_LOOKBACK = timedelta(days=7)
"""Only transactions booked this recently raise a large-transaction alert: connecting a bank with a year of history
must not bury the list under last year's rent."""


class AlertSettingsError(ValueError):
    """A settings change the user asked for that cannot be kept; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: its dedupe key, kind, a short title and a sentence of detail (both plain text)."""

    key: str
    kind: str
    title: str
    detail: str


@dataclass(frozen=True, slots=True)
class AlertRun:
    """What one evaluation did: alerts raised, alerts e-mailed, and why the e-mail failed (None: it did not)."""

    raised: int
    emailed: int
    email_error: str | None = None


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Which kinds are off, and the large-transaction threshold per currency the user set."""

    disabled: frozenset[str] = frozenset()
    thresholds: Mapping[str, Decimal] = field(default_factory=dict)

    def enabled(self, kind: str) -> bool:
        return kind not in self.disabled

    def threshold(self, currency: str) -> Decimal:
        """The amount from which a single expense in `currency` is large."""
        return self.thresholds.get(currency) or DEFAULT_THRESHOLDS.get(currency, FALLBACK_THRESHOLD)


def clean_threshold(currency: str, value: Any) -> Decimal:
    """A threshold the user typed, as money; AlertSettingsError says why it cannot be one."""
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isascii() or not currency.isupper():
        raise AlertSettingsError(_("{code} is not a currency code (three capital letters, e.g. BRL). Nothing was "
                                   "changed.").format(code=repr(currency)))
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{1,20}(?:[.,][0-9]{1,20})?", text):
        raise AlertSettingsError(_("The {currency} threshold must be an amount such as 1000 or 1000.50. Nothing was "
                                   "changed.").format(currency=currency))
    amount = Decimal(text.replace(",", "."))
    if amount <= 0 or amount > MAX_THRESHOLD:
        raise AlertSettingsError(_("The {currency} threshold must be more than zero and at most {max}. Nothing was "
                                   "changed.").format(currency=currency, max=f"{MAX_THRESHOLD:,}"))
    if amount != amount.quantize(Decimal("0.01")):
        raise AlertSettingsError(_("The {currency} threshold has more than two decimals. Nothing was changed.")
                                 .format(currency=currency))
    return amount.quantize(Decimal("0.01"))


def large_transactions(rows: Iterable[Mapping[str, Any]], settings: AlertSettings, today: date) -> list[Alert]:
    """An alert per expense at or over its currency's threshold, booked within LARGE_LOOKBACK of `today`.

    `rows` are live posted expenses (transfers already left out) with id, booked_date, amount (negative),
    currency, description, merchant and account."""
    if not settings.enabled(LARGE_TRANSACTION):
        return []
    alerts = []
    for row in rows:
        amount, currency = Decimal(row["amount"]), str(row["currency"])
        if -amount < settings.threshold(currency) or row["booked_date"] < today - LARGE_LOOKBACK:
            continue
        who = row.get("merchant") or row.get("description") or _("an unnamed payee")
        alerts.append(Alert(
            key=f"{LARGE_TRANSACTION}:{row['id']}", kind=LARGE_TRANSACTION,
            title=_("Large transaction: {amount} at {payee}").format(amount=format_money(-amount, currency),
                                                                     payee=who),
            detail=_("{amount} on {day} from {account} ({description}); your threshold for {currency} is "
                     "{threshold}.").format(amount=format_money(amount, currency),
                                            day=format_short_day(row["booked_date"]), account=row["account"],
                                            description=row["description"], currency=currency,
                                            threshold=format_money(settings.threshold(currency), currency))))
    return alerts


def reconnects(items: Iterable[Any], episodes: Mapping[str, datetime | None], settings: AlertSettings) -> list[Alert]:
    """An alert per connection that needs the user to reconnect (or whose access the bank revoked).

    `items` are health.BannerItem; only the urgent ones (data has stopped) count, not consent merely expiring.
    `episodes` maps a connection to its last successful sync: the key includes it, so a connection that breaks,
    is repaired and breaks again raises a new alert, while one that stays broken raises one."""
    if not settings.enabled(RECONNECT):
        return []
    alerts = []
    for item in items:
        if not item.urgent:
            continue
        episode = episodes.get(item.connection_id)
        alerts.append(Alert(
            key=f"{RECONNECT}:{item.connection_id}:{episode.isoformat() if episode else 'never'}", kind=RECONNECT,
            title=_("{institution} needs you to reconnect").format(institution=item.institution),
            detail=f"{item.message} " + _("Open Connections and press Reconnect to renew access.")))
    return alerts


def over_budget(lines: Iterable[BudgetLine], month: date, settings: AlertSettings) -> list[Alert]:
    """An alert per category and currency over its budget in `month` (budgets.BudgetLine with `over`), once per
    month: `over_budget:2026-12:food:BRL`."""
    if not settings.enabled(OVER_BUDGET):
        return []
    return [Alert(
        key=f"{OVER_BUDGET}:{month:%Y-%m}:{line.category}:{line.currency}", kind=OVER_BUDGET,
        title=_("{category} is over budget for {month} ({currency})").format(
            category=line.category_name, month=format_long_month(month), currency=line.currency),
        detail=_("Spent {spent} of {budgeted} budgeted: {over} over.").format(
            spent=format_money(line.actual, line.currency), budgeted=format_money(line.available, line.currency),
            over=format_money(-line.left, line.currency)))
        for line in lines if line.over]


def new_subscriptions(series: Iterable[Series], settings: AlertSettings) -> list[Alert]:
    """An alert per subscription that began lately (`Series.is_new`), once per series; dismissed ones stay quiet."""
    if not settings.enabled(NEW_SUBSCRIPTION):
        return []
    return [Alert(
        key=f"{NEW_SUBSCRIPTION}:{item.key}", kind=NEW_SUBSCRIPTION,
        title=_("New subscription: {name}").format(name=item.merchant),
        detail=_("{amount} {cadence}, since {day}").format(
            amount=format_money(-item.amount, item.currency), cadence=CADENCE_LABELS[item.cadence],
            day=format_short_day(item.first_date))
        + (_("; next expected on {day}.").format(day=format_short_day(item.next_date)) if item.next_date else "."))
        for item in series if item.is_new and item.kind == "subscription" and item.status != "dismissed"]


def price_changes(series: Iterable[Series], settings: AlertSettings) -> list[Alert]:
    """An alert per price change of a subscription or recurring payment, once per change (its date is in the key)."""
    if not settings.enabled(PRICE_CHANGE):
        return []
    return [Alert(
        key=f"{PRICE_CHANGE}:{item.key}:{change.on.isoformat()}", kind=PRICE_CHANGE,
        title=_("{name} changed its price").format(name=item.merchant),
        detail=_("Went from {before} to {after} on {day}.").format(
            before=format_money(-change.before, item.currency), after=format_money(-change.after, item.currency),
            day=format_short_day(change.on)))
        for item in series if item.kind != "installment" and item.status != "dismissed"
        for change in item.price_changes]


def evaluate(*, settings: AlertSettings, today: date, large: Sequence[Mapping[str, Any]] = (),
             reconnect_items: Sequence[Any] = (), episodes: Mapping[str, datetime | None] | None = None,
             budget_lines: Sequence[BudgetLine] = (), series: Sequence[Series] = ()) -> list[Alert]:
    """Every alert the facts call for, of the kinds that are on (one per key)."""
    found = [*large_transactions(large, settings, today), *reconnects(reconnect_items, episodes or {}, settings),
             *over_budget(budget_lines, today, settings), *new_subscriptions(series, settings),
             *price_changes(series, settings)]
    return list({alert.key: alert for alert in found}.values())
