"""Connectors: the catalog (the sandbox "Pluggy Bank" and real banks that can only be listed offline), GET /connectors,
GET /connectors/{id}, POST /connectors/{id}/validate, and the testers' hook `set_connector_status`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from finance.providers.pluggy.sandbox.base import PluggyBase, _Call, _not_found, _page, _truthy


def _credential(name: str, label: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "type": kind, "placeholder": extra.pop("placeholder", ""),
            "validation": extra.pop("validation", None), "validationMessage": extra.pop("validationMessage", None),
            "optional": False, "mfa": False, **extra}


def _connector(connector_id: int, name: str, url: str, color: str, *, sandbox: bool, open_finance: bool,
               credentials: list[dict[str, Any]], products: list[str], icon: str) -> dict[str, Any]:
    return {
        "id": connector_id, "name": name, "institutionUrl": url,
        "imageUrl": f"https://cdn.pluggy.ai/assets/connector-icons/{icon}.svg", "primaryColor": color,
        "type": "PERSONAL_BANK", "country": "BR", "credentials": credentials, "hasMFA": False,
        "oauth": open_finance, "oauthUrl": None, "resetPasswordUrl": None,
        "health": {"status": "ONLINE", "stage": None, "incidents": []}, "products": products, "isSandbox": sandbox,
        "isOpenFinance": open_finance, "supportsPaymentInitiation": open_finance,
        "supportsScheduledPayments": open_finance, "supportsSmartTransfers": False,
        "supportsBoletoManagement": False, "supportsAutomaticPix": open_finance,
        "createdAt": "2020-09-07T00:08:06.588Z", "updatedAt": "2025-01-10T12:00:00.000Z",
    }


SANDBOX_CONNECTOR_ID = 0
RETIRING_CONNECTOR_ID = 1
OPEN_FINANCE_CONNECTOR_ID = 2
RETIREMENT_DATE = "2026-12-31"
_SANDBOX_LOGIN = [_credential("user", "User", "text", placeholder="user-ok"),
                  _credential("password", "Password", "password", placeholder="password-ok")]
_PRODUCTS = ["ACCOUNTS", "CREDIT_CARDS", "TRANSACTIONS", "INVESTMENTS", "INVESTMENTS_TRANSACTIONS", "LOANS"]
_RETIREMENT = {
    # How Pluggy announces that a direct (screen-scraping) connector goes away in favour of the institution's Open
    # Finance connector: a scheduled incident on the connector's health, while the Open Finance twin (same
    # institutionUrl, isOpenFinance: true) is listed beside it. Items left on it are deleted 30 days after it stops.
    "id": "retire-direct-pluggy-bank", "title": "Conexão direta descontinuada: use o Open Finance",
    "description": f"A conexão direta com o Pluggy Bank deixa de funcionar em {RETIREMENT_DATE}. Reconecte pelo "
                   "conector Pluggy Bank Open Finance.",
    "type": "OTHER", "product": "dados", "kind": "MAINTENANCE", "severity": "MAINTENANCE", "state": "SCHEDULED",
    "startedAt": "2026-01-05T12:00:00.000Z", "updatedAt": None, "url": "https://status.pluggy.ai",
}
_CPF = _credential("cpf", "CPF", "number", validation=r"^\d{3}\.?\d{3}\.?\d{3}-?\d{2}$",
                   validationMessage="CPF deve ter 11 números.", placeholder="000.000.000-00")
CONNECTORS: tuple[dict[str, Any], ...] = (
    _connector(SANDBOX_CONNECTOR_ID, "Pluggy Bank", "https://pluggy.ai", "ef294b", sandbox=True, open_finance=False,
               credentials=_SANDBOX_LOGIN, products=_PRODUCTS, icon="sandbox"),
    {**_connector(RETIRING_CONNECTOR_ID, "Pluggy Bank (conexão direta)", "https://bank.pluggy.ai", "ef294b",
                  sandbox=True, open_finance=False, credentials=_SANDBOX_LOGIN, products=_PRODUCTS, icon="sandbox"),
     "health": {"status": "ONLINE", "stage": None, "incidents": [_RETIREMENT]}},
    # Offline, the Open Finance sandbox takes the sandbox login instead of the bank's consent page (oauth: false).
    {**_connector(OPEN_FINANCE_CONNECTOR_ID, "Pluggy Bank Open Finance", "https://bank.pluggy.ai", "ef294b",
                  sandbox=True, open_finance=True, credentials=_SANDBOX_LOGIN, products=_PRODUCTS, icon="sandbox"),
     "oauth": False},
    _connector(200, "MeuPluggy", "https://meu.pluggy.ai", "ef294b", sandbox=False, open_finance=True,
               credentials=[], products=["ACCOUNTS", "CREDIT_CARDS", "TRANSACTIONS", "INVESTMENTS"], icon="sandbox"),
    _connector(601, "Itaú", "https://www.itau.com.br", "EC7000", sandbox=False, open_finance=True,
               credentials=[_CPF], products=["ACCOUNTS", "CREDIT_CARDS", "TRANSACTIONS", "IDENTITY", "LOANS"],
               icon="201"),
    _connector(612, "Nubank", "https://nubank.com.br", "820AD1", sandbox=False, open_finance=True,
               credentials=[_CPF], products=["ACCOUNTS", "CREDIT_CARDS", "TRANSACTIONS", "IDENTITY"], icon="212"),
)
"""The connector catalog: the sandbox "Pluggy Bank" plus real banks that can only be listed offline."""


def connector_by_id(raw_id: object) -> dict[str, Any]:
    """The catalog's connector with this id; 404 CONNECTOR_NOT_FOUND otherwise."""
    for connector in CONNECTORS:
        if str(connector["id"]) == str(raw_id):
            return connector
    raise _not_found("CONNECTOR", "connector not found")


def _fold(text: str) -> str:
    """Lower case without accents, for "name alike" connector search."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


class ConnectorsMixin(PluggyBase):
    """The connector catalog and its health announcements."""

    def set_connector_status(self, connector_id: int, status: str) -> None:
        """Announce a connector's health (ONLINE, UNSTABLE, OFFLINE) to the webhooks: connector/status_updated."""
        if status not in ("ONLINE", "UNSTABLE", "OFFLINE"):
            raise ValueError("status must be ONLINE, UNSTABLE or OFFLINE")
        connector = self._find_connector(connector_id)
        with self._lock:
            self._reload_if_changed()
            self._emit("connector/status_updated", None, id=str(connector["id"]), connectorId=connector["id"],
                       data={"status": status})
            self._save()

    @staticmethod
    def _connector_json(connector: dict[str, Any], health_details: bool) -> dict[str, Any]:
        if not health_details:
            return connector
        details = {"connectionRateLast6Hours": 99.1, "connectionsLast6Hours": 128}
        return {**connector, "health": {**connector["health"], "details": details}}

    @staticmethod
    def _find_connector(raw_id: object) -> dict[str, Any]:
        return connector_by_id(raw_id)

    def _list_connectors(self, call: _Call) -> tuple[int, Any]:
        params = call.params
        countries = {c.strip().upper() for v in params.get_list("countries") for c in v.split(",") if c.strip()}
        types = {t.strip().upper() for v in params.get_list("types") for t in v.split(",") if t.strip()}
        name = _fold(params.get("name") or "")
        flags = {key: _truthy(params.get(key)) for key in ("isOpenFinance", "supportsPaymentInitiation",
                                                             "supportsSmartTransfers", "supportsAutomaticPix")
                 if params.get(key) is not None}
        results = [
            self._connector_json(c, _truthy(params.get("healthDetails"))) for c in CONNECTORS
            if (_truthy(params.get("sandbox")) or not c["isSandbox"])
            and (not countries or c["country"] in countries)
            and (not types or c["type"] in types)
            and name in _fold(c["name"])
            and all(c[key] == value for key, value in flags.items())
        ]
        return 200, _page(results)

    def _get_connector(self, call: _Call) -> tuple[int, Any]:
        connector = self._find_connector(call.match["id"])
        return 200, self._connector_json(connector, _truthy(call.params.get("healthDetails")))

    @staticmethod
    def _parameter_errors(connector: dict[str, Any], parameters: dict[str, Any]) -> list[dict[str, Any]]:
        errors = []
        for credential in connector["credentials"]:
            name, value = credential["name"], parameters.get(credential["name"])
            if credential.get("optional") or credential.get("mfa"):
                continue
            if not isinstance(value, str) or not value:
                errors.append({"code": "001", "message": f"{name} parameter is required", "parameter": name})
            elif credential.get("validation") and not re.match(credential["validation"], value):
                errors.append({"code": "002", "message": credential.get("validationMessage") or f"invalid {name}",
                               "parameter": name})
        return errors

    def _validate(self, call: _Call) -> tuple[int, Any]:
        connector = self._find_connector(call.match["id"])
        parameters = call.body()
        return 200, {"parameters": parameters, "errors": self._parameter_errors(connector, parameters)}
