"""One unified category taxonomy for every provider.

Each category has a kind that decides how it counts: "income" and "expense" count toward income
and spending (net of refunds), "transfer" counts toward neither (card bill payments, moves between
the user's own accounts, investments), "other" counts by the sign of each amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["income", "expense", "transfer", "other"]


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name: str
    kind: Kind
    parent_id: str | None = None


UNCATEGORIZED = "uncategorized"

_TAXONOMY: list[tuple[str, str, Kind]] = [
    ("income", "Income", "income"),
    ("income.salary", "Salary", "income"),
    ("income.interest", "Interest and dividends", "income"),
    ("income.benefits", "Benefits and government aid", "income"),
    ("income.other", "Other income", "income"),
    ("transfer", "Transfers", "transfer"),
    ("transfer.own_accounts", "Between own accounts", "transfer"),
    ("transfer.credit_card_payment", "Credit card payment", "transfer"),
    ("transfer.loan_payment", "Loan payment", "transfer"),
    ("transfer.investment", "Investments", "transfer"),
    ("people", "Transfers to and from people", "other"),
    ("food", "Food and drink", "expense"),
    ("food.groceries", "Groceries", "expense"),
    ("food.restaurants", "Restaurants", "expense"),
    ("food.delivery", "Food delivery", "expense"),
    ("shopping", "Shopping", "expense"),
    ("shopping.online", "Online shopping", "expense"),
    ("shopping.electronics", "Electronics", "expense"),
    ("shopping.clothing", "Clothing", "expense"),
    ("shopping.pets", "Pets", "expense"),
    ("housing", "Housing", "expense"),
    ("housing.rent", "Rent", "expense"),
    ("housing.utilities", "Utilities", "expense"),
    ("housing.home", "Home and garden", "expense"),
    ("transport", "Transportation", "expense"),
    ("transport.fuel", "Fuel", "expense"),
    ("transport.rideshare", "Taxi and ride-hailing", "expense"),
    ("transport.public", "Public transport", "expense"),
    ("transport.parking_tolls", "Parking and tolls", "expense"),
    ("travel", "Travel", "expense"),
    ("health", "Health", "expense"),
    ("health.pharmacy", "Pharmacy", "expense"),
    ("health.fitness", "Fitness", "expense"),
    ("entertainment", "Entertainment", "expense"),
    ("entertainment.streaming", "Streaming and subscriptions", "expense"),
    ("services", "Services", "expense"),
    ("services.telecom", "Phone and internet", "expense"),
    ("services.education", "Education", "expense"),
    ("services.insurance", "Insurance", "expense"),
    ("personal_care", "Personal care", "expense"),
    ("fees", "Bank fees and interest", "expense"),
    ("taxes", "Taxes", "expense"),
    ("donations", "Donations", "expense"),
    ("gambling", "Gambling", "expense"),
    (UNCATEGORIZED, "Uncategorized", "other"),
]

CATEGORIES: dict[str, Category] = {
    cid: Category(id=cid, name=name, kind=kind, parent_id=cid.rsplit(".", 1)[0] if "." in cid else None)
    for cid, name, kind in _TAXONOMY
}


def category(cid: str) -> Category:
    """The category with this id, or Uncategorized for an unknown id (never raises)."""
    return CATEGORIES.get(cid) or CATEGORIES[UNCATEGORIZED]


def is_transfer(cid: str) -> bool:
    return category(cid).kind == "transfer"
