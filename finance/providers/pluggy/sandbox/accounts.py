"""Accounts: what an item's accounts hold as of its last sync (`AccountView`, from the household ledger or from the
`accounts` source a caller plugs in), GET /accounts and GET /accounts/{id}.
"""

from __future__ import annotations

import bisect
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from finance.providers.pluggy.sandbox.base import _UUID, PluggyBase, _bad_request, _Call, _not_found, _page, _parse_time
from finance.providers.pluggy.sandbox.connectors import connector_by_id
from finance.providers.pluggy.sandbox.household import (
    CARD_LAST4,
    HOLDER,
    SAO_PAULO,
    bill_total,
    brazilian_ledger,
    close_date_for,
    due_date_for,
    latest_close,
)
from finance.providers.pluggy.sandbox.wire import pluggy_transaction, real_world_variants
from finance.sandbox.ledger import Ledger, add_months, iso_z, stable_uuid

CREDIT_LIMIT = 12000.0


@dataclass(slots=True)
class AccountView:
    """One account of an item as of the item's last sync: wire rows sorted by (date, id) and their total.

    account_id: `PluggyEmulator.account_id(item_id, index)`. kind: "checking" or "card" (the card comes after the
    checking accounts). total: the sum of the rows' amounts, from the account holder's side. opening: the balance
    before the first row.
    """

    account_id: str
    index: int
    kind: str
    rows: list[dict[str, Any]]
    total: float
    opening: float


AccountSource = Callable[[str], list[AccountView]]
"""The accounts of an item, by item id, in place of the household ledger's (asked once the item has synced)."""


def _digits(text: str, count: int) -> str:
    return f"{uuid.uuid5(uuid.NAMESPACE_OID, text).int % 10**count:0{count}d}"


class AccountsMixin(PluggyBase):
    """Account views (cached per item snapshot) and the /accounts endpoints."""

    card_sign: str
    accounts: AccountSource | None
    _views: OrderedDict[tuple[object, ...], list[AccountView]]

    @staticmethod
    def _household(item: dict[str, Any]) -> tuple[str, datetime]:
        """Whose bank data an item shows: its own household, or (an item that reconnects a bank through another
        connector of the same institution) the household of the item it continues."""
        household = item.get("household") or {"key": item["id"], "createdAt": item["createdAt"]}
        return str(household["key"]), _parse_time(household["createdAt"])

    def _ledger(self, item: dict[str, Any], checking: int | None = None) -> Ledger:
        layout = item["layout"]
        key, created = self._household(item)
        if checking is not None:
            return brazilian_ledger(self.seed, key, created, checking_accounts=checking)
        return brazilian_ledger(self.seed, key, created, checking_accounts=layout["checking"], card=layout["card"])

    @staticmethod
    def _open_finance(item: dict[str, Any]) -> bool:
        return bool(connector_by_id(item["connectorId"])["isOpenFinance"])

    @classmethod
    def _item_id_of(cls, item: dict[str, Any], raw_id: str) -> str:
        """The id an item shows for one of its household's objects: the same bank object has another id through
        an Open Finance connector than through the direct one."""
        return stable_uuid(raw_id, "open-finance") if cls._open_finance(item) else raw_id

    def account_id(self, item_id: str, index: int) -> str:
        """The id of an item's account number `index` (stable across restarts)."""
        return stable_uuid(self.seed, item_id, "account", index)

    def _views_of(self, item: dict[str, Any]) -> list[AccountView]:
        """Every account of an item as of its last successful sync (empty before the first one)."""
        if not item["syncs"] or not item.get("layout"):
            return []
        if self.accounts is not None:
            return self.accounts(item["id"])
        syncs = item["syncs"]
        key = (item["id"], item["createdAt"], json.dumps(item["layout"]), len(syncs), syncs[0], syncs[-1],
               self.card_sign, self._patch_version)
        views = self._views.get(key)
        if views is not None:
            self._views.move_to_end(key)
            return views
        ledger = self._ledger(item)
        moments = [_parse_time(s) for s in syncs]
        cutoff = moments[-1]
        open_finance = self._open_finance(item)
        closed_through = latest_close(cutoff)
        views = []
        for spec in ledger.profile.accounts:
            account_id = self.account_id(item["id"], spec.index)
            card = spec.kind == "card"
            flip = card and self.card_sign == "purchase_positive"
            rows, total = [], 0.0
            for entry, pending, appeared in ledger.view(spec.index, cutoff):
                total += entry.amount if pending else entry.final_amount
                created = moments[bisect.bisect_left(moments, appeared)]
                tx_id = self._item_id_of(item, str(entry.pending_id if pending else entry.id))
                patch = self._patches.get(tx_id)
                row = pluggy_transaction(
                    entry, account_id=account_id, pending=pending, created_at=created, flip=flip,
                    card_number=CARD_LAST4 if card else None,
                    category_id=patch["categoryId"] if patch else None,
                    updated_at=_parse_time(patch["updatedAt"]) if patch else None,
                    closed_through=closed_through, open_finance=open_finance)
                row["id"] = tx_id
                if open_finance and (row["creditCardMetadata"] or {}).get("billId"):
                    row["creditCardMetadata"]["billId"] = self._item_id_of(item, row["creditCardMetadata"]["billId"])
                rows.append(real_world_variants(row, self.seed, open_finance=open_finance))
            rows.sort(key=lambda t: (t["date"], t["id"]))
            views.append(AccountView(account_id, spec.index, spec.kind, rows, round(total, 2),
                                      spec.opening_balance))
        self._views[key] = views
        while len(self._views) > 32:
            self._views.popitem(last=False)
        return views

    def _find_account(self, account_id: str) -> tuple[dict[str, Any], AccountView] | None:
        for item in self._items.values():
            for view in self._views_of(item):
                if view.account_id == account_id:
                    return item, view
        return None

    def _account_json(self, item: dict[str, Any], view: AccountView) -> dict[str, Any]:
        cutoff = _parse_time(item["syncs"][-1])
        number_seed = f"{self.seed}/{self._household(item)[0]}/{view.index}"
        common = {"id": view.account_id, "itemId": item["id"], "currencyCode": "BRL", "owner": HOLDER.name,
                  "taxNumber": HOLDER.document, "createdAt": item["createdAt"], "updatedAt": iso_z(cutoff)}
        if view.kind == "card":
            owed = round(-view.total, 2)
            close = close_date_for(cutoff.astimezone(SAO_PAULO).date())
            # The card follows the checking accounts, so its index is their count (whatever served the rows).
            ledger = self._ledger(item, checking=view.index)
            last_bill = bill_total(ledger.entries[view.index], add_months(close, -1))
            return {
                **common, "type": "CREDIT", "subtype": "CREDIT_CARD", "number": f"xxxx{CARD_LAST4}",
                "name": "Mastercard Black", "marketingName": "PLUGGY BANK MASTERCARD BLACK",
                "balance": owed if self.card_sign == "purchase_positive" else -owed, "bankData": None,
                "creditData": {
                    "level": "BLACK", "brand": "MASTERCARD", "brandAdditionalInfo": None,
                    "balanceCloseDate": iso_z(_local_midnight(close)),
                    "balanceDueDate": iso_z(_local_midnight(due_date_for(close))),
                    "availableCreditLimit": round(CREDIT_LIMIT - owed, 2), "creditLimit": CREDIT_LIMIT,
                    "balanceForeignCurrency": 0.0, "minimumPayment": round(max(last_bill, 0.0) * 0.15, 2),
                    "isLimitFlexible": False, "status": "ACTIVE", "holderType": "MAIN",
                    "disaggregatedCreditLimits": None, "additionalCards": None,
                },
            }
        balance = round(view.opening + view.total, 2)
        number = f"0001/{_digits(number_seed, 5)}-{_digits(number_seed + '/dv', 1)}"
        return {
            **common, "type": "BANK", "subtype": "CHECKING_ACCOUNT", "number": number,
            "name": "Conta Corrente" if view.index == 0 else f"Conta Corrente {view.index + 1}",
            "marketingName": "PLUGGY BANK CONTA CORRENTE", "balance": balance, "creditData": None,
            "bankData": {"transferNumber": number, "closingBalance": balance, "automaticallyInvestedBalance": 0.0,
                         "overdraftContractedLimit": 1000.0, "overdraftUsedLimit": round(max(0.0, -balance), 2),
                         "unarrangedOverdraftAmount": 0.0, "hasReservedBalance": False, "reservedBalances": None},
        }

    def _list_accounts(self, call: _Call) -> tuple[int, Any]:
        item_id = call.params.get("itemId") or ""
        if not _UUID.match(item_id):
            raise _bad_request("itemId should not be null or undefined, itemId must be a UUID")
        item = self._items.get(item_id)
        if item is None:
            raise _not_found("ITEM", "item not found")
        self._check_scope(call, item)
        wanted = (call.params.get("type") or "").upper()
        accounts = [self._account_json(item, view) for view in self._views_of(item)]
        return 200, _page([a for a in accounts if not wanted or a["type"] == wanted])

    def _get_account(self, call: _Call) -> tuple[int, Any]:
        found = self._find_account(call.match["id"])
        if found is None:
            raise _not_found("ACCOUNT", "account not found")
        return 200, self._account_json(*found)


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SAO_PAULO)
