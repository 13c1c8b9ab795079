"""The emulator's categories as Plaid words them: personal finance categories in the v1 or v2 taxonomy, and the legacy
`category` / `category_id` some transactions still carry.

The household files every row under a v1 detailed category; a request for `v2` gets the v2 name of the same intent
(salaries are INCOME_SALARY, payments through apps and wires have their own transfer categories, money borrowed
arriving is a LOAN_DISBURSEMENTS one).
"""

from __future__ import annotations

from finance.providers.plaid.sandbox.household import pfc_primary

PFC_VERSIONS = ("v1", "v2")
V1_TO_V2 = {
    "INCOME_WAGES": "INCOME_SALARY",
    "INCOME_OTHER_INCOME": "INCOME_OTHER",
    "TRANSFER_IN_CASH_ADVANCES_AND_LOANS": "LOAN_DISBURSEMENTS_OTHER_DISBURSEMENT",
}
"""v1 detailed categories renamed in v2 (the others kept their name)."""
V2_BY_KIND = {
    ("p2p", "TRANSFER_IN_ACCOUNT_TRANSFER"): "TRANSFER_IN_TRANSFER_IN_FROM_APPS",
    ("p2p", "TRANSFER_OUT_ACCOUNT_TRANSFER"): "TRANSFER_OUT_TRANSFER_OUT_FROM_APPS",
    ("wire", "TRANSFER_IN_ACCOUNT_TRANSFER"): "TRANSFER_IN_WIRE",
}
"""(kind of row, v1 category) → the finer v2 category: v1 files app payments and wires as plain account transfers."""
LEGACY = {
    "FOOD_AND_DRINK_GROCERIES": (["Shops", "Supermarkets and Groceries"], "19047000"),
    "FOOD_AND_DRINK_RESTAURANT": (["Food and Drink", "Restaurants"], "13005000"),
    "FOOD_AND_DRINK_FAST_FOOD": (["Food and Drink", "Restaurants", "Fast Food"], "13005032"),
    "FOOD_AND_DRINK_COFFEE": (["Food and Drink", "Restaurants", "Coffee Shop"], "13005043"),
    "TRANSPORTATION_TAXIS_AND_RIDE_SHARES": (["Travel", "Taxi"], "22016000"),
    "TRANSPORTATION_PUBLIC_TRANSIT": (["Travel", "Public Transportation Services"], "22014000"),
    "GENERAL_MERCHANDISE_ONLINE_MARKETPLACES": (["Shops", "Digital Purchase"], "19013000"),
    "GENERAL_MERCHANDISE_SUPERSTORES": (["Shops", "Department Stores"], "19018000"),
    "MEDICAL_PHARMACIES_AND_SUPPLEMENTS": (["Shops", "Pharmacies"], "19043000"),
    "ENTERTAINMENT_TV_AND_MOVIES": (["Service", "Subscription"], "18061000"),
    "ENTERTAINMENT_MUSIC_AND_AUDIO": (["Service", "Subscription"], "18061000"),
    "INCOME_WAGES": (["Transfer", "Payroll"], "21009000"),
    "RENT_AND_UTILITIES_RENT": (["Payment", "Rent"], "16002000"),
    "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT": (["Payment", "Credit Card"], "16001000"),
    "TRANSFER_OUT_WITHDRAWAL": (["Transfer", "Withdrawal", "ATM"], "21012002"),
    "BANK_FEES_ATM_FEES": (["Bank Fees", "ATM"], "10002000"),
}
"""v1 detailed category → Plaid's legacy (pre-PFC) category hierarchy and id, for the rows that still carry one."""


def personal_finance_category(v1_detailed: str, kind: str, version: str | None) -> tuple[str, str]:
    """(primary, detailed) of a row filed under `v1_detailed`, in the taxonomy `version` asks for (v1 by default)."""
    detailed = v1_detailed
    if version == "v2":
        detailed = V2_BY_KIND.get((kind, v1_detailed)) or V1_TO_V2.get(v1_detailed, v1_detailed)
    return pfc_primary(detailed), detailed


def legacy_category(v1_detailed: str) -> tuple[list[str] | None, str | None]:
    """The legacy `category` and `category_id` of a row, or (None, None) where Plaid has stopped sending one."""
    hierarchy, category_id = LEGACY.get(v1_detailed, (None, None))
    return (list(hierarchy) if hierarchy else None), category_id
