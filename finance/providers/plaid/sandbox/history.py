"""An item's history: its ledger (the US household, a custom user's rows, rows /sandbox/transactions/create added),
point-in-time views of it, and the changes between two refreshes (pending→posted churn, enrichment).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from finance.providers.plaid.sandbox.accounts import LAYOUTS, _AccountMeta
from finance.providers.plaid.sandbox.base import PlaidBase, _parse, plaid_id
from finance.providers.plaid.sandbox.household import NEW_YORK, ScriptedProfile, ScriptedRow, UsMerchant, us_ledger
from finance.sandbox.ledger import AccountSpec, Entry, Ledger, cached_ledger, stable_uuid

_CLASSIFIER = (
    ("payroll", "INCOME_WAGES"), ("salary", "INCOME_WAGES"), ("interest", "INCOME_INTEREST_EARNED"),
    ("rent", "RENT_AND_UTILITIES_RENT"), ("grocer", "FOOD_AND_DRINK_GROCERIES"), ("coffee", "FOOD_AND_DRINK_COFFEE"),
    ("restaurant", "FOOD_AND_DRINK_RESTAURANT"), ("uber", "TRANSPORTATION_TAXIS_AND_RIDE_SHARES"),
    ("lyft", "TRANSPORTATION_TAXIS_AND_RIDE_SHARES"), ("gas", "TRANSPORTATION_GAS"),
    ("amazon", "GENERAL_MERCHANDISE_ONLINE_MARKETPLACES"), ("netflix", "ENTERTAINMENT_TV_AND_MOVIES"),
    ("atm", "TRANSFER_OUT_WITHDRAWAL"), ("credit card", "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT"),
)
"""Keyword → detailed category for rows whose description is all Plaid knows (custom users, sandbox-created rows)."""


def _classify(description: str, amount: float) -> tuple[str, str]:
    """(detailed category, confidence) for a row known only by its description and Plaid-signed amount."""
    lowered = description.lower()
    for keyword, category in _CLASSIFIER:
        if keyword in lowered:
            return category, "MEDIUM"
    return ("TRANSFER_IN_DEPOSIT", "LOW") if amount < 0 else ("GENERAL_MERCHANDISE_OTHER_GENERAL_MERCHANDISE", "LOW")


@dataclass(slots=True)
class _Row:
    """One transaction as of some refresh: the ledger entry, its state, and when it got its current content."""

    entry: Entry
    pending: bool
    account: _AccountMeta
    enriched: bool
    changed_at: datetime


@dataclass(slots=True)
class _View:
    """An item's data as of one moment: the rows /transactions/sync knows and each account's (posted, pending) sums."""

    rows: dict[str, _Row]
    balances: list[tuple[float, float]]
    fingerprints: dict[str | None, str] = field(default_factory=dict)

    def fingerprint(self, account_id: str | None) -> str:
        """A digest of the rows (of one account, or all): equal digests mean nothing to sync changed."""
        if account_id not in self.fingerprints:
            digest = hashlib.sha256()
            for tx_id in sorted(self.rows):
                row = self.rows[tx_id]
                if account_id is None or row.account.account_id == account_id:
                    digest.update(f"{tx_id}{'+' if row.enriched else '-'}".encode())
            self.fingerprints[account_id] = digest.hexdigest()[:16]
        return self.fingerprints[account_id]


def _custom_profile(accounts: list[dict[str, Any]], created: datetime) -> ScriptedProfile:
    """A custom user's accounts as a scripted ledger profile: each account's balance at the item's creation is its
    `starting_balance` (owed, for credit and loans)."""
    today = created.astimezone(NEW_YORK).date()
    specs, rows = [], []
    for i, account in enumerate(accounts):
        sign = -1.0 if account["type"] in ("credit", "loan") else 1.0
        booked = 0.0
        for tx in account["transactions"]:
            transacted, posted = date.fromisoformat(tx["date_transacted"]), date.fromisoformat(tx["date_posted"])
            category, _ = _classify(tx["description"], tx["amount"])
            rows.append(ScriptedRow(i, transacted, posted, -tx["amount"], tx["description"], category))
            if posted <= today:
                booked -= tx["amount"]
        specs.append(AccountSpec(f"custom:{account['type']}", i, round(sign * account["starting_balance"] - booked,
                                                                        2)))
    return ScriptedProfile(today, tuple(specs), tuple(rows))


class HistoryMixin(PlaidBase):
    """Ledgers, point-in-time views and deltas: what /transactions/sync pages through."""

    _views: OrderedDict[tuple[object, ...], _View]
    _changes: OrderedDict[tuple[object, ...], list[tuple[str, str, _Row]]]

    def _ledger(self, item: dict[str, Any]) -> Ledger:
        created = _parse(item["created_at"])
        if item["layout"] != "custom":
            return us_ledger(self.seed, item["item_id"], created, accounts=LAYOUTS[item["layout"]],
                             dynamic=item["layout"] == "dynamic")
        accounts = item["custom"]
        key = ("plaid-custom", self.seed, item["item_id"], item["created_at"], json.dumps(accounts, sort_keys=True))
        return cached_ledger(key, lambda: Ledger(f"custom/{self.seed}/{item['item_id']}",
                                                 _custom_profile(accounts, created)))

    def _created_entries(self, item: dict[str, Any]) -> list[Entry]:
        """The rows /sandbox/transactions/create added, as ledger entries on the first account (checking)."""
        entries = []
        for n, row in enumerate(item["created_rows"]):
            transacted, posted = date.fromisoformat(row["date_transacted"]), date.fromisoformat(row["date_posted"])
            when = datetime.combine(transacted, time(0), NEW_YORK)
            days = (posted - transacted).days
            category, _ = _classify(row["description"], row["amount"])
            entry = Entry(0, when, -row["amount"], row["description"], category, "sandbox",
                          description_raw=row["description"], method="other",
                          lag=_parse(row["created_at"]) - when, pending_for=timedelta(days=days) if days else None)
            entry.id = stable_uuid(item["item_id"], "created", n)
            entry.pending_id = stable_uuid(item["item_id"], "created", n, "pending") if days else None
            entries.append(entry)
        return entries

    def _window(self, item: dict[str, Any]) -> tuple[date, date | None]:
        """The dates of the history Transactions covers (days_requested back from initialization, or the sandbox
        start/end dates)."""
        since = _parse(item["transactions_since"]).astimezone(NEW_YORK).date()
        start = since - timedelta(days=item["days_requested"])
        if item["start_date"]:
            start = date.fromisoformat(item["start_date"])
        return start, date.fromisoformat(item["end_date"]) if item["end_date"] else None

    def _enriched_at(self, item: dict[str, Any], entry: Entry) -> datetime | None:
        """When a posted purchase gets its merchant and category filled in (a `modified` update), if it ever does."""
        if not isinstance(entry.merchant, UsMerchant) or entry.kind not in ("purchase", "debit_card"):
            return None
        number = int(hashlib.sha256(entry.id.encode()).hexdigest()[:8], 16)
        if number % (4 if item["layout"] == "dynamic" else 10):
            return None
        posted = entry.posts_at or entry.when + entry.lag
        return posted + timedelta(hours=24 + number % 48)

    def _view(self, item: dict[str, Any], moment: datetime) -> _View:
        """The item's rows and balances as of `moment` (cached: views are pure functions of the item and moment)."""
        key = (item["item_id"], moment, len(item["created_rows"]), item["transactions_since"])
        view = self._views.get(key)
        if view is not None:
            self._views.move_to_end(key)
            return view
        ledger, metas = self._ledger(item), self._layout(item)
        since = item["transactions_since"]
        window = self._window(item) if since is not None and _parse(since) <= moment else None
        created = self._created_entries(item)
        rows: dict[str, _Row] = {}
        balances = []
        for spec, meta in zip(ledger.profile.accounts, metas, strict=True):
            states: Iterator[tuple[Entry, bool, datetime]] = ledger.view(spec.index, moment)
            if spec.index == 0 and created:
                extra = [(e, s[0], s[1]) for e in created if (s := e.state_at(moment)) is not None]
                states = iter([*states, *extra])
            posted, pending_total = spec.opening_balance, 0.0
            for entry, pending, appeared in states:
                if pending:
                    pending_total += entry.amount
                else:
                    posted += entry.final_amount
                day = entry.when.astimezone(NEW_YORK).date()
                if window is None or not meta.syncs or day < window[0] or (window[1] is not None and day > window[1]):
                    continue
                enriched, changed = True, appeared
                enriched_at = None if pending else self._enriched_at(item, entry)
                if enriched_at is not None:
                    enriched = enriched_at <= moment
                    changed = max(appeared, enriched_at) if enriched else appeared
                tx_id = plaid_id(entry.pending_id if pending else entry.id)
                rows[tx_id] = _Row(entry, pending, meta, enriched, changed)
            balances.append((round(posted, 2), round(pending_total, 2)))
        view = self._views[key] = _View(rows, balances)
        while len(self._views) > 32:
            self._views.popitem(last=False)
        return view

    def _delta(self, item: dict[str, Any], seen: datetime | None, target: datetime,
               account_id: str | None) -> list[tuple[str, str, _Row]]:
        """(kind, transaction id, row) for every change between the refreshes `seen` and `target`, in the order the
        changes happened: what /transactions/sync pages through."""
        key = (item["item_id"], seen, target, account_id, len(item["created_rows"]), item["transactions_since"])
        changes = self._changes.get(key)
        if changes is not None:
            return changes
        old = self._view(item, seen).rows if seen is not None else {}
        new = self._view(item, target).rows
        events: list[tuple[datetime, int, str, str, _Row]] = []
        for tx_id, row in new.items():
            if account_id is not None and row.account.account_id != account_id:
                continue
            before = old.get(tx_id)
            if before is None:
                events.append((row.changed_at, 1, tx_id, "added", row))
            elif before.enriched != row.enriched:
                events.append((row.changed_at, 2, tx_id, "modified", row))
        for tx_id, row in old.items():
            if tx_id not in new and (account_id is None or row.account.account_id == account_id):
                gone = row.entry.posts_at if row.entry.posts_at is not None and row.entry.posts_at <= target else target
                events.append((gone, 0, tx_id, "removed", row))
        events.sort(key=lambda event: event[:3])
        changes = self._changes[key] = [(kind, tx_id, row) for _, _, tx_id, kind, row in events]
        while len(self._changes) > 16:
            self._changes.popitem(last=False)
        return changes
