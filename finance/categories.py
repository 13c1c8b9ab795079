"""One unified category taxonomy for every provider.

Each category has a kind that decides how it counts: "income" and "expense" count toward income
and spending (net of refunds), "transfer" counts toward neither (card bill payments, moves between
the user's own accounts, investments), "other" counts by the sign of each amount.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from finance.i18n import N_, LazyText, _

Kind = Literal["income", "expense", "transfer", "other"]


@dataclass(frozen=True, slots=True)
class Category:
    """One category; `name` is its English name (stored, exported, the catalogs' msgid), `label` what people read."""

    id: str
    name: str
    kind: Kind
    parent_id: str | None = None

    @property
    def label(self) -> str:
        """The name in the interface language."""
        return _(self.name)


UNCATEGORIZED = "uncategorized"

_TAXONOMY: list[tuple[str, LazyText, Kind]] = [
    ("income", N_("Income"), "income"),
    ("income.salary", N_("Salary"), "income"),
    ("income.interest", N_("Interest and dividends"), "income"),
    ("income.benefits", N_("Benefits and government aid"), "income"),
    ("income.other", N_("Other income"), "income"),
    ("transfer", N_("Transfers"), "transfer"),
    ("transfer.own_accounts", N_("Between own accounts"), "transfer"),
    ("transfer.credit_card_payment", N_("Credit card payment"), "transfer"),
    ("transfer.loan_payment", N_("Loan payment"), "transfer"),
    ("transfer.investment", N_("Investments"), "transfer"),
    ("people", N_("Transfers to and from people"), "other"),
    ("food", N_("Food and drink"), "expense"),
    ("food.groceries", N_("Groceries"), "expense"),
    ("food.restaurants", N_("Restaurants"), "expense"),
    ("food.delivery", N_("Food delivery"), "expense"),
    ("shopping", N_("Shopping"), "expense"),
    ("shopping.online", N_("Online shopping"), "expense"),
    ("shopping.electronics", N_("Electronics"), "expense"),
    ("shopping.clothing", N_("Clothing"), "expense"),
    ("shopping.pets", N_("Pets"), "expense"),
    ("housing", N_("Housing"), "expense"),
    ("housing.rent", N_("Rent"), "expense"),
    ("housing.utilities", N_("Utilities"), "expense"),
    ("housing.home", N_("Home and garden"), "expense"),
    ("transport", N_("Transportation"), "expense"),
    ("transport.fuel", N_("Fuel"), "expense"),
    ("transport.rideshare", N_("Taxi and ride-hailing"), "expense"),
    ("transport.public", N_("Public transport"), "expense"),
    ("transport.parking_tolls", N_("Parking and tolls"), "expense"),
    ("travel", N_("Travel"), "expense"),
    ("health", N_("Health"), "expense"),
    ("health.pharmacy", N_("Pharmacy"), "expense"),
    ("health.fitness", N_("Fitness"), "expense"),
    ("entertainment", N_("Entertainment"), "expense"),
    ("entertainment.streaming", N_("Streaming and subscriptions"), "expense"),
    ("services", N_("Services"), "expense"),
    ("services.telecom", N_("Phone and internet"), "expense"),
    ("services.education", N_("Education"), "expense"),
    ("services.insurance", N_("Insurance"), "expense"),
    ("personal_care", N_("Personal care"), "expense"),
    ("fees", N_("Bank fees and interest"), "expense"),
    ("taxes", N_("Taxes"), "expense"),
    ("donations", N_("Donations"), "expense"),
    ("gambling", N_("Gambling"), "expense"),
    (UNCATEGORIZED, N_("Uncategorized"), "other"),
]

CATEGORIES: dict[str, Category] = {
    cid: Category(id=cid, name=name.message, kind=kind, parent_id=cid.rsplit(".", 1)[0] if "." in cid else None)
    for cid, name, kind in _TAXONOMY
}


def category(cid: str) -> Category:
    """The category with this id, or Uncategorized for an unknown id (never raises)."""
    return CATEGORIES.get(cid) or CATEGORIES[UNCATEGORIZED]


def category_label(cid: str) -> str:
    """"Food and drink › Groceries": the category under its parent, in the interface language."""
    found = category(cid)
    parent = CATEGORIES.get(found.parent_id or "")
    return f"{parent.label} › {found.label}" if parent else found.label


def labelled(ids: Iterable[str]) -> dict[str, str]:
    """Each id's label (category_label), in the alphabetical order of the interface language: a parent comes
    right before its children, accents do not send a name to the end."""
    labels = {cid: category_label(cid) for cid in ids}
    return dict(sorted(labels.items(), key=lambda item: unicodedata.normalize("NFKD", item[1]).casefold()))


def is_transfer(cid: str) -> bool:
    return category(cid).kind == "transfer"
