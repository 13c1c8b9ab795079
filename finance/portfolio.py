"""Card bills and installment commitments as the pages show them, and when a sync reads the portfolio (pure: no SQL).

- Each card's current bill is the first one not yet due (closed and waiting for payment, or still open); its next
  bill is the one after. A card with no bill ahead shows its latest.
- What future installments commit, month by month, from the installment plans finance.recurring detects ("parcela
  3/10": the seven still to come, one a month from the next expected date).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from finance.formatting import format_money
from finance.i18n import N_, Messages, ngettext
from finance.recurring import Series, add_months

RESOURCE_LABELS = Messages({"investments": N_("investments"), "investment_transactions": N_("investment transactions"),
                            "liabilities": N_("loans"), "bills": N_("card bills")})
"""finance.model.PORTFOLIO_RESOURCES in words, for the messages that say which could not be read."""


PORTFOLIO_INTERVAL = timedelta(hours=1)
"""How often a sync reads a connection's investments, loans and bills: they change daily at most (prices close once a
day, bills once a month), while transactions are synced every few minutes and on every webhook. Each read costs a
request per resource and per investment; a webhook saying the portfolio changed reads it sooner."""


def portfolio_due(last_read: datetime | None, now: datetime) -> bool:
    """Whether a sync at `now` reads the portfolio, last read at `last_read` (None: never). A last read in the future
    (the clock went back) is due: the interval cannot be trusted then."""
    return last_read is None or last_read > now or now - last_read >= PORTFOLIO_INTERVAL


def resource_label(resource: str) -> str:
    """"investment transactions" for investment_transactions, in the interface language."""
    return RESOURCE_LABELS.get(resource) or resource.replace("_", " ")


@dataclass(frozen=True, slots=True)
class Bill:
    """One card bill (amounts positive, as the bank prints them)."""

    id: str
    account_id: str
    card: str
    due_date: date
    total: Decimal
    currency: str
    closing_date: date | None = None
    minimum_payment: Decimal | None = None
    is_paid: bool | None = None

    def state(self, today: date) -> str:
        """"open" (still taking purchases), "closed" (waiting for payment), "paid" or "overdue"."""
        if self.is_paid:
            return "paid"
        if self.closing_date is not None and self.closing_date >= today:
            return "open"
        return "overdue" if self.due_date < today and self.is_paid is False else "closed"


@dataclass(frozen=True, slots=True)
class CardBills:
    account_id: str
    card: str
    current: Bill
    next: Bill | None


def card_bills(bills: Iterable[Bill], today: date) -> list[CardBills]:
    """Each card's current and next bill (see the module docstring), by card name."""
    by_card: dict[str, list[Bill]] = defaultdict(list)
    for bill in bills:
        by_card[bill.account_id].append(bill)
    out = []
    for account_id, own in by_card.items():
        own.sort(key=lambda b: b.due_date)
        ahead = [b for b in own if b.due_date >= today]
        current = ahead[0] if ahead else own[-1]
        later = [b for b in own if b.due_date > current.due_date]
        out.append(CardBills(account_id, current.card, current, later[0] if later else None))
    return sorted(out, key=lambda c: (c.card, c.account_id))


@dataclass(frozen=True, slots=True)
class MonthCommitment:
    month: date  # the first day of the month
    currency: str
    amount: Decimal  # positive: what installments take that month
    plans: int


def committed_installments(series: Sequence[Series], today: date) -> list[MonthCommitment]:
    """Per month and currency, the installments still to come of every outgoing plan, from this month on."""
    totals: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    plans: dict[tuple[date, str], int] = defaultdict(int)
    this_month = today.replace(day=1)
    for plan in series:
        if plan.kind != "installment" or not plan.remaining or plan.next_date is None or plan.next_amount >= 0:
            continue
        for k in range(plan.remaining):
            month = max(add_months(plan.next_date, k).replace(day=1), this_month)
            totals[(month, plan.currency)] += -plan.next_amount
            plans[(month, plan.currency)] += 1
    return [MonthCommitment(month, currency, totals[(month, currency)], plans[(month, currency)])
            for month, currency in sorted(totals)]


def commitment_sentence(months: Sequence[MonthCommitment], currency: str) -> str:
    """"R$ 1.240,00 over the next 6 months" for one currency's commitments ('' when there are none)."""
    own = [m for m in months if m.currency == currency]
    if not own:
        return ""
    total = sum((m.amount for m in own), Decimal(0))
    count = len({m.month for m in own})
    return ngettext("{amount} over the next {count} month", "{amount} over the next {count} months", count).format(
        amount=format_money(total, currency), count=count)
