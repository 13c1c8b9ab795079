"""Institutions: Plaid's non-OAuth sandbox banks, /institutions/get_by_id and /institutions/search.
"""

from __future__ import annotations

from typing import Any

from finance.providers.plaid.sandbox.base import (
    PlaidApiError,
    PlaidBase,
    _Call,
    _country_codes,
    _invalid,
    _object,
    _products,
    _string,
    _strings,
)

_FULL_PRODUCTS = ["assets", "auth", "balance", "identity", "identity_match", "income_verification", "investments",
                  "liabilities", "recurring_transactions", "signal", "statements", "transactions", "transfer"]
_BANK_PRODUCTS = ["assets", "auth", "balance", "identity", "investments", "liabilities", "transactions"]


def _institution(institution_id: str, name: str, products: list[str], routing: list[str], color: str,
                 dtc: list[str] | None = None) -> dict[str, Any]:
    return {"institution_id": institution_id, "name": name, "products": products, "country_codes": ["US"],
            "routing_numbers": routing, "dtc_numbers": dtc or [], "oauth": False,
            "connection_availability": "SUPPORTED", "url": "https://plaid.com", "primary_color": color, "logo": None}
INSTITUTIONS: tuple[dict[str, Any], ...] = (
    _institution("ins_109508", "First Platypus Bank", _FULL_PRODUCTS, ["011401533", "021000021"], "#1f1f1f"),
    _institution("ins_109509", "First Gingham Credit Union", _BANK_PRODUCTS, ["231372691"], "#b5121b"),
    _institution("ins_109510", "Tattersall Federal Credit Union", _BANK_PRODUCTS, ["122105155"], "#2e6b30"),
    _institution("ins_109511", "Tartan Bank", ["auth", "balance", "identity", "liabilities", "transactions"],
                 ["063100277"], "#5b2c83"),
    _institution("ins_109512", "Houndstooth Bank", ["auth", "balance", "identity", "transactions"],
                 ["011000138", "011200365", "011400495"], "#004966", ["2236", "0955", "1367"]),
)
"""Plaid's non-OAuth sandbox institutions (all US)."""


class InstitutionsMixin(PlaidBase):
    """The sandbox institutions and the /institutions/* endpoints."""

    @staticmethod
    def _institution(institution_id: object) -> dict[str, Any]:
        for institution in INSTITUTIONS:
            if institution["institution_id"] == institution_id:
                return institution
        raise PlaidApiError("INVALID_INSTITUTION")

    def _institution_json(self, institution: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in institution.items() if k not in ("url", "primary_color", "logo")}
        if options.get("include_optional_metadata"):
            body.update(url=institution["url"], primary_color=institution["primary_color"], logo=institution["logo"])
        if options.get("include_status"):
            healthy = {"status": "HEALTHY", "last_status_change": "2024-01-01T00:00:00Z",
                       "breakdown": {"success": 0.99, "error_plaid": 0.005, "error_institution": 0.005,
                                     "refresh_interval": "NORMAL"}}
            body["status"] = {"item_logins": healthy, "transactions_updates": healthy, "auth": healthy,
                              "identity": healthy, "health_incidents": []}
        if options.get("include_auth_metadata"):
            body["auth_metadata"] = {"supported_methods": {"instant_auth": True, "instant_match": False,
                                                           "automated_micro_deposits": False,
                                                           "instant_micro_deposits": False}}
        if options.get("include_payment_initiation_metadata"):
            body["payment_initiation_metadata"] = None
        return body

    def _institutions_get_by_id(self, call: _Call) -> dict[str, Any]:
        countries = _country_codes(call.body)
        institution = self._institution(_string(call.body, "institution_id", required=True))
        if not set(countries) & set(institution["country_codes"]):
            raise PlaidApiError("INVALID_INSTITUTION", "the institution is not available in the requested countries")
        return {"institution": self._institution_json(institution, _object(call.body, "options"))}

    def _institutions_search(self, call: _Call) -> dict[str, Any]:
        countries = set(_country_codes(call.body))
        query = (_string(call.body, "query", required=True) or "").lower()
        products = _strings(call.body, "products")
        if products is not None:
            if not products:
                raise _invalid("products must contain at least one product when sent")
            products = _products(products, "products")
        options = _object(call.body, "options")
        found = [institution for institution in INSTITUTIONS
                 if query in institution["name"].lower() and countries & set(institution["country_codes"])
                 and all(p in institution["products"] for p in products or [])
                 and options.get("oauth") in (None, institution["oauth"])]
        return {"institutions": [self._institution_json(institution, options) for institution in found[:10]]}
