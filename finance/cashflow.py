"""The cash-flow Sankey's model, from the aggregated flows of one currency (finance.store.cashflow): money in (income
sources) → one "Money in" node → money out (spending by top-level category) and "Savings".

It always balances: what flows into the middle node equals what flows out of it. A flow on the unexpected side —
an expense category whose refunds outweigh its purchases, an income category whose reversals outweigh it — moves
to the other side instead of becoming a negative link. Savings are income − spending when positive; when spending
is larger, the difference comes in as "From savings". Small flows are grouped as "Other (smaller …)" on each side,
named apart from the category "Other income"; a grouped flow still lists every transaction behind it. No Streamlit,
no SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from finance.i18n import N_, _

# The nodes the model adds, named in the interface language when a cash flow is built (compare with str(MIDDLE)).
MIDDLE = N_("Money in")
SAVINGS = N_("Savings")
FROM_SAVINGS = N_("From savings")
OTHER_INCOME = N_("Other (smaller sources)")
OTHER_SPENDING = N_("Other (smaller categories)")
MAX_SOURCES = 8
MAX_USES = 10
SMALL_SHARE = Decimal("0.02")
"""A flow under 2 % of its side's total joins "Other" (as do flows past the largest MAX_SOURCES / MAX_USES)."""


@dataclass(frozen=True, slots=True)
class Flow:
    """One link of the Sankey: money from `source` to `target`, and the flow keys of the rows behind it."""

    source: str
    target: str
    amount: Decimal
    flow_keys: tuple[str, ...]
    transactions: int
    kind: Literal["income", "spending", "savings"]

    @property
    def label(self) -> str:
        return f"{self.source} → {self.target}"


@dataclass(frozen=True, slots=True)
class CashFlow:
    """One currency's cash flow: the links, income and spending as the other figures count them, and savings."""

    currency: str
    flows: tuple[Flow, ...]
    income: Decimal  # net income (income − income reversals)
    spending: Decimal  # net spending (purchases − refunds)

    @property
    def savings(self) -> Decimal:
        """Income − spending (negative: spending came from savings)."""
        return self.income - self.spending

    @property
    def inflow(self) -> Decimal:
        """What flows into the middle node."""
        return sum((f.amount for f in self.flows if f.target == str(MIDDLE)), Decimal(0))

    @property
    def outflow(self) -> Decimal:
        """What flows out of the middle node (spending and savings)."""
        return sum((f.amount for f in self.flows if f.source == str(MIDDLE)), Decimal(0))

    def nodes(self) -> list[str]:
        """The nodes in the figure's order: sources, the middle node, then uses (a payer and a spending category of
        the same name are two nodes)."""
        middle = str(MIDDLE)
        return [*(f.source for f in self.flows if f.target == middle), middle,
                *(f.target for f in self.flows if f.source == middle)]


@dataclass(slots=True)
class _Group:
    name: str
    amount: Decimal
    keys: list[str]
    transactions: int


def _label(row: Mapping[str, Any]) -> str:
    """A flow's node name: the payer where it has one, else the category (a missing value may come as None or NaN);
    a flow on the unexpected side says so."""
    payer, category = row["payer"], row["group_name"]
    name = payer if isinstance(payer, str) and payer else _(category) if isinstance(category, str) and category \
        else str(row["group_id"])
    amount = Decimal(row["amount"])
    if row["side"] == "out" and amount > 0:
        return _("Refunds: {name}").format(name=name)
    if row["side"] == "in" and amount < 0:
        return _("Returned: {name}").format(name=name)
    return name


def _grouped(groups: list[_Group], limit: int, other: str) -> list[_Group]:
    """The largest `limit` groups of at least SMALL_SHARE of the total; the rest joined under `other`."""
    total = sum((g.amount for g in groups), Decimal(0))
    ranked = sorted(groups, key=lambda g: (-g.amount, g.name))
    kept = [g for g in ranked[:limit] if g.amount >= total * SMALL_SHARE]
    rest = [g for g in ranked if g not in kept]
    if len(rest) == 1:
        return [*kept, rest[0]]
    if rest:
        kept.append(_Group(other, sum((g.amount for g in rest), Decimal(0)), [k for g in rest for k in g.keys],
                           sum(g.transactions for g in rest)))
    return kept


def _merge_names(groups: Iterable[_Group]) -> list[_Group]:
    """Groups sharing a node name (a payer paying under two categories) as one."""
    merged: dict[str, _Group] = {}
    for g in groups:
        found = merged.get(g.name)
        if found is None:
            merged[g.name] = _Group(g.name, g.amount, list(g.keys), g.transactions)
        else:
            found.amount += g.amount
            found.keys += g.keys
            found.transactions += g.transactions
    return list(merged.values())


def build_cash_flow(rows: Iterable[Mapping[str, Any]], currency: str) -> CashFlow:
    """The Sankey model of one currency from `cash_flow` rows (flow_key, side, group_id, group_name, payer, amount,
    transactions); rows with a zero net are left out."""
    sources: list[_Group] = []
    uses: list[_Group] = []
    income = spending = Decimal(0)
    for row in rows:
        amount = Decimal(row["amount"])
        if row["side"] == "in":
            income += amount
        else:
            spending -= amount
        if amount == 0:
            continue
        group = _Group(_label(row), abs(amount), [str(row["flow_key"])], int(row["transactions"]))
        (sources if amount > 0 else uses).append(group)
    middle = str(MIDDLE)
    flows = [Flow(g.name, middle, g.amount, tuple(g.keys), g.transactions, "income")
             for g in _grouped(_merge_names(sources), MAX_SOURCES, str(OTHER_INCOME))]
    flows += [Flow(middle, g.name, g.amount, tuple(g.keys), g.transactions, "spending")
              for g in _grouped(_merge_names(uses), MAX_USES, str(OTHER_SPENDING))]
    savings = income - spending
    if savings > 0:
        flows.append(Flow(middle, str(SAVINGS), savings, (), 0, "savings"))
    elif savings < 0:
        flows.insert(0, Flow(str(FROM_SAVINGS), middle, -savings, (), 0, "savings"))
    return CashFlow(currency, tuple(flows), income, spending)
