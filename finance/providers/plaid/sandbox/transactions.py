"""/transactions/sync: cursors, pages, mutation during pagination, and the Transaction wire shape.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from finance.providers.plaid.sandbox.accounts import _ISO_CURRENCIES
from finance.providers.plaid.sandbox.base import (
    DEFAULT_DAYS_REQUESTED,
    PlaidApiError,
    PlaidBase,
    _Call,
    _int,
    _invalid,
    _money,
    _object,
    _parse,
    _string,
    _wire_time,
    plaid_id,
)
from finance.providers.plaid.sandbox.categories import PFC_VERSIONS, legacy_category, personal_finance_category
from finance.providers.plaid.sandbox.history import _classify, _Row
from finance.providers.plaid.sandbox.household import NEW_YORK, UsMerchant

SYNC_PAGE_SIZE_CAP = 500
"""The most updates one /transactions/sync page carries, whatever `count` asks (tests monkeypatch it small)."""
SYNC_DEFAULT_COUNT = 100
SYNC_MAX_COUNT = 500
TRANSACTIONS_READY_AFTER = timedelta(0)
"""How long after Transactions is initialized /transactions/sync still answers NOT_READY with an empty cursor."""
_CURSOR_VERSION = "p1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime | None) -> str:
    return "" if moment is None else str((moment - _EPOCH) // timedelta(microseconds=1))


def _from_micros(text: str) -> datetime | None:
    return None if text == "" else _EPOCH + timedelta(microseconds=int(text))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


class _Variants:
    """Which of the shapes real answers take (all allowed by the schema) one transaction shows, drawn from the seed
    and its id: the legacy category, a counterparty's phone number, a null entity_id or datetime, a store number."""

    def __init__(self, seed: int, tx_id: str) -> None:
        bits = int(hashlib.sha256(f"{seed}/variants/{tx_id}".encode()).hexdigest()[:8], 16)
        self.legacy_category = bits % 4 == 0
        self.phone_number = (bits >> 2) % 3 == 0
        self.no_entity_id = (bits >> 4) % 8 == 0
        self.no_datetime = (bits >> 7) % 10 == 0
        self.store_number = (bits >> 11) % 2 == 0


def _store_number(merchant: UsMerchant) -> str:
    """The store's number as Plaid sends it: text, often with leading zeros ("02912"), taken from the descriptor."""
    digits = re.findall(r"\d{3,}", merchant.descriptor)
    return digits[-1] if digits else f"{int(hashlib.sha256(merchant.name.encode()).hexdigest()[:4], 16) % 9000 + 1000}"


class TransactionsMixin(PlaidBase):
    """/transactions/sync and the Transaction wire shape."""

    def _transactions_sync(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call, healthy=True)
        body = call.body
        size = min(_int(body, "count", SYNC_DEFAULT_COUNT, 1, SYNC_MAX_COUNT), SYNC_PAGE_SIZE_CAP)
        if "options" in body and body["options"] is None:
            raise _invalid("options must be an object when sent")
        options = _object(body, "options")
        version = _string(options, "personal_finance_category_version")
        if version is not None and version not in PFC_VERSIONS:
            raise _invalid("personal_finance_category_version must be v1 or v2")
        if not isinstance(options.get("include_original_description", False), bool | None):
            raise _invalid("include_original_description must be a boolean")
        metas = self._layout(item)
        account_id = _string(options, "account_id")
        if account_id is not None and account_id not in {m.account_id for m in metas if m.syncs}:
            raise PlaidApiError("INVALID_ACCOUNT_ID")
        cursor = _string(body, "cursor") or ""
        if item["transactions_since"] is None:  # not initialized with Transactions: this call initializes it
            item["products"] = [*item["products"], "transactions"]
            item["transactions_since"] = call.now.isoformat()
            item["days_requested"] = _int(options, "days_requested", DEFAULT_DAYS_REQUESTED, 1, 730)
            item["refreshes"].append(call.now.isoformat())
            self._save()
            return self._not_ready()
        if call.now < _parse(item["transactions_since"]) + TRANSACTIONS_READY_AFTER:
            return self._not_ready()
        current = self._snapshot(item, call.now)
        if item["webhook"] and not item.get("notified_refresh"):  # from now on, refreshes are announced
            item["notified_refresh"] = current.isoformat()
            self._save()
        if cursor == "now":
            seen, target, offset = current, None, 0
        else:
            seen, target, offset, fingerprint = self._read_cursor(cursor, item, account_id)
            if target is not None:
                moved = target != current and self._view(item, current).fingerprint(account_id) != fingerprint
                if moved or self._mutation_pending:
                    self._mutation_pending = False
                    raise PlaidApiError("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION")
        target = target or current
        changes = self._delta(item, seen, target, account_id) if cursor != "now" else []
        page = changes[offset: offset + size]
        has_more = offset + size < len(changes)
        if has_more:
            fingerprint = self._view(item, target).fingerprint(account_id)
            next_cursor = self._cursor(item, account_id, seen, target, offset + size, fingerprint)
        else:
            next_cursor = self._cursor(item, account_id, target, None, 0, "")
        view = self._view(item, target)
        options = {"include_original_description": options.get("include_original_description"),
                   "personal_finance_category_version": version}
        return {
            "accounts": [self._account_json(meta, view.balances[i]) for i, meta in enumerate(metas)
                         if meta.syncs and account_id in (None, meta.account_id)],
            "added": [self._transaction_json(tx_id, row, options) for kind, tx_id, row in page if kind == "added"],
            "modified": [self._transaction_json(tx_id, row, options) for kind, tx_id, row in page
                         if kind == "modified"],
            "removed": [{"transaction_id": tx_id, "account_id": row.account.account_id} for kind, tx_id, row in page
                        if kind == "removed"],
            "next_cursor": next_cursor,
            "has_more": has_more,
            "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
        }

    @staticmethod
    def _not_ready() -> dict[str, Any]:
        return {"accounts": [], "added": [], "modified": [], "removed": [], "next_cursor": "", "has_more": False,
                "transactions_update_status": "NOT_READY"}

    @staticmethod
    def _cursor(item: dict[str, Any], account_id: str | None, seen: datetime | None, target: datetime | None,
                offset: int, fingerprint: str) -> str:
        """base64 of "p1|item|account|seen refresh|refresh being paged|offset|fingerprint" (µs since the epoch)."""
        text = "|".join((_CURSOR_VERSION, item["item_id"], account_id or "", _micros(seen), _micros(target),
                         str(offset), fingerprint))
        return base64.b64encode(text.encode()).decode()

    @staticmethod
    def _read_cursor(cursor: str, item: dict[str, Any],
                     account_id: str | None) -> tuple[datetime | None, datetime | None, int, str]:
        """(seen refresh, refresh being paged, offset, fingerprint) of a cursor; "" is the start of history."""
        if cursor == "":
            return None, None, 0, ""
        try:
            parts = base64.b64decode(cursor, validate=True).decode().split("|")
            version, item_id, account, seen, target, offset, fingerprint = parts
            decoded = _from_micros(seen), _from_micros(target), int(offset), fingerprint
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise _invalid("cursor is not a valid /transactions/sync cursor") from exc
        if version != _CURSOR_VERSION or item_id != item["item_id"] or decoded[2] < 0:
            raise _invalid("cursor is not a valid /transactions/sync cursor for this Item")
        if account != (account_id or ""):
            raise _invalid("cursor was issued for a different options.account_id")
        return decoded

    def _transaction_json(self, tx_id: str, row: _Row, options: dict[str, Any]) -> dict[str, Any]:
        entry, pending, meta = row.entry, row.pending, row.account
        amount = _money(-(entry.amount if pending else entry.final_amount))
        moment: datetime | None = entry.when
        if not pending and entry.posts_at is not None:
            moment = entry.posts_at
        elif not pending and not entry.exact_time:  # booked some time that day (None: not known that day)
            moment = entry.when + entry.lag
            moment = moment if moment.date() == entry.when.date() else None
        day = (entry.when if pending or moment is None else moment).astimezone(NEW_YORK).date()
        merchant = entry.merchant if isinstance(entry.merchant, UsMerchant) else None
        known = merchant if merchant is not None and row.enriched else None
        if merchant is not None and not row.enriched:
            detailed, confidence = "GENERAL_MERCHANDISE_OTHER_GENERAL_MERCHANDISE", "LOW"
        elif entry.kind in ("scripted", "sandbox"):
            detailed, confidence = _classify(entry.description, amount)
        else:
            detailed, confidence = entry.category_id, "VERY_HIGH" if known else "HIGH"
        version = options.get("personal_finance_category_version")
        primary, named = personal_finance_category(detailed, entry.kind, version)
        category: dict[str, Any] = {"primary": primary, "detailed": named, "confidence_level": confidence,
                                    "version": version or "v1"}
        variant = _Variants(self.seed, tx_id)
        counterparties = []
        logo = entity = None
        if known is not None:
            entity = plaid_id("merchant", known.name)
            logo = f"https://plaid-merchant-logos.plaid.com/{_slug(known.name)}_{int(entity[:4], 36) % 1000}.png"
            counterparties.append({"name": known.name, "type": known.kind,
                                   "entity_id": None if variant.no_entity_id else entity, "logo_url": logo,
                                   "website": known.website, "confidence_level": "VERY_HIGH"})
            if variant.phone_number:
                counterparties[-1]["phone_number"] = f"+1800555{int(entity[:6], 36) % 10_000:04d}"
        elif entry.counterparty is not None and detailed == "INCOME_WAGES":
            counterparties.append({"name": entry.counterparty.name, "type": "income_source",
                                   "entity_id": plaid_id("income", entry.counterparty.name), "logo_url": None,
                                   "website": None, "confidence_level": "HIGH"})
        elif entry.counterparty is not None and entry.counterparty.account:  # a wire: the sender's bank and numbers
            party = entry.counterparty
            counterparties.append({"name": party.name, "type": "financial_institution",
                                   "entity_id": plaid_id("bank", party.name), "logo_url": None, "website": None,
                                   "confidence_level": "HIGH", "account_numbers": {
                                       "bacs": {"account": party.account, "sort_code": party.branch},
                                       "international": {"iban": None, "bic": party.bank_code}}})
        place = known.location if known is not None and known.channel == "in store" else None
        channel = entry.method or "other"
        iso = meta.currency in _ISO_CURRENCIES
        legacy, legacy_id = legacy_category(detailed) if variant.legacy_category else (None, None)
        if variant.no_datetime:
            moment = None
        return {
            "account_id": meta.account_id,
            "account_owner": None,
            "amount": amount,
            "iso_currency_code": meta.currency if iso else None,
            "unofficial_currency_code": None if iso else meta.currency,
            "category": legacy,
            "category_id": legacy_id,
            "check_number": None,
            "counterparties": counterparties,
            "date": day.isoformat(),
            "datetime": _wire_time(moment) if moment is not None else None,
            "authorized_date": entry.when.astimezone(NEW_YORK).date().isoformat(),
            "authorized_datetime": _wire_time(entry.when) if entry.exact_time else None,
            "location": {"address": place[0] if place else None, "city": place[1] if place else None,
                         "region": place[2] if place else None, "postal_code": place[3] if place else None,
                         "country": "US" if place else None, "lat": None, "lon": None,
                         "store_number": _store_number(known) if place and variant.store_number else None},
            "name": entry.description,
            "merchant_name": known.name if known else None,
            "merchant_entity_id": entity,
            "merchant_category_code": str(known.mcc) if known else None,
            "logo_url": logo,
            "website": known.website if known else None,
            "original_description": entry.description_raw if options.get("include_original_description") else None,
            "payment_meta": {"by_order_of": None, "payee": None,
                             "payer": entry.counterparty.name if entry.counterparty else None,
                             "payment_method": None, "payment_processor": None, "ppd_id": None, "reason": None,
                             "reference_number": None},
            "payment_channel": channel,
            "pending": pending,
            "pending_transaction_id": plaid_id(entry.pending_id) if not pending and entry.pending_id else None,
            "personal_finance_category": category,
            "personal_finance_category_icon_url": f"https://plaid-category-icons.plaid.com/PFC_{primary}.png",
            "transaction_id": tx_id,
            "transaction_code": entry.operation,
            "transaction_type": {"in store": "place", "online": "digital"}.get(channel, "special"),
        }
