"""What the user is looking at on the Transactions page: the filter a page builds and the store turns into SQL
(finance.store.transactions). Pure data, so pages can build one without reaching into the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal


@dataclass(frozen=True, slots=True)
class TransactionFilter:
    """What the user is looking at. Empty tuples and None mean "no filter on this"."""

    start: date | None = None
    end: date | None = None
    account_ids: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # effective category; a parent ("food") also matches its children
    statuses: tuple[str, ...] = ()  # "pending", "posted"
    direction: Literal["in", "out"] | None = None  # money in (amount > 0) or out (amount < 0)
    min_amount: Decimal | None = None  # on the size of the amount, whatever its sign
    max_amount: Decimal | None = None
    text: str = ""  # every word must occur in the description, merchant or note (case-insensitive)
    include_deleted: bool = False
