"""Budgets: a monthly amount per category (a parent covers its children) per currency against what was spent, for
the month and the year to date; what is left per day; over-budget categories highlighted; the transactions behind
each line on the Transactions page; set, remove and copy last month's budgets. BRL and USD are never added."""

from datetime import date

import pandas as pd
import streamlit as st

from finance.budgets import BudgetError, BudgetLine, add_months, first_of_month, last_of_month
from finance.categories import labelled
from finance.formatting import escape_markdown, format_money
from finance.households import NotAllowed
from finance.i18n import _, format_long_month, format_period, month_names
from finance.ui.auth import editor
from finance.ui.context import as_of_caption, services
from finance.ui.widgets import flash, show_flash

st.title(_("Budgets"))
svc = services()

PAGE = "budgets"
TRANSACTIONS_PAGE = "pages/transactions.py"
MONTHS_BACK, MONTHS_AHEAD = 24, 3
SPENDING_KINDS = ("expense", "other")


def hand_off_to_transactions(category: str, currency: str, start: date, end: date, include_pending: bool) -> None:
    """Open the Transactions page on this category, the accounts in this currency and the period (its filter
    widgets read these keys, as the Overview's drill-down sets them)."""
    accounts = svc.transactions.account_options()
    st.session_state.update({
        "txn_period": (start, end), "txn_categories": [category],
        "txn_accounts": list(accounts.loc[accounts["currency"] == currency, "id"]),
        "txn_status": [] if include_pending else ["posted"], "txn_text": "", "txn_direction": "",
        "txn_min": None, "txn_max": None, "txn_show_deleted": False,
    })
    st.switch_page(TRANSACTIONS_PAGE)


def run_edit(action, *args, **kwargs) -> None:
    """A button or form callback: one change, reported on the next run; refused input says why."""
    try:
        flash(PAGE, "success", action(*args, actor=editor(), **kwargs))
    except (BudgetError, NotAllowed) as exc:
        flash(PAGE, "error", str(exc))


def save_budget(month: date) -> None:
    state = st.session_state
    run_edit(svc.budgets.set, month, state["budgets_category"], state["budgets_currency"], state["budgets_amount"],
             rollover=state["budgets_rollover"])


def lines_table(lines: list[BudgetLine], currency: str, *, with_month: bool) -> pd.DataFrame:
    """The lines of one currency as people read them; `over` stays a column for the highlight."""
    money = lambda value: format_money(value, currency)  # noqa: E731
    table = pd.DataFrame({
        _("Category"): [line.category_name for line in lines],
        _("Budget"): [money(line.budget) for line in lines],
        _("Spent"): [money(line.actual) for line in lines],
        _("Left"): [money(line.left) for line in lines],
        _("Status"): ["🔴 " + _("Over budget") if line.over else _("Within budget") for line in lines],
    })
    if with_month:
        table.insert(2, _("Carried in"),
                     [money(line.carried) if line.rollover or line.carried else "" for line in lines])
        table[_("Per day left")] = [money(line.per_day) if line.per_day is not None else "—" for line in lines]
    return table


def highlighted(table: pd.DataFrame):
    """Over-budget rows in red."""
    status = _("Status")
    return table.style.apply(lambda row: ["background-color: rgba(255, 75, 75, 0.18)"
                                          if row[status].startswith("🔴") else "" for _cell in row], axis=1)


show_flash(PAGE)

today = date.today()
this_month = first_of_month(today)
months = [add_months(this_month, n) for n in range(MONTHS_AHEAD, -MONTHS_BACK - 1, -1)]
controls = st.columns([2, 1.2, 2], vertical_alignment="bottom")
month = controls[0].selectbox(_("Month"), months, index=MONTHS_AHEAD, format_func=format_long_month,
                              key="budgets_month")
include_pending = controls[1].toggle(_("Include pending"), value=True, key="budgets_pending")
controls[2].button(_("Copy the budgets of {month}").format(month=format_long_month(add_months(month, -1))),
                   key="budgets_copy", icon="📋", on_click=run_edit, args=(svc.budgets.copy_last_month, month),
                   help=_("Adds last month's budgets to this month; budgets this month already has are kept."))

month_lines = svc.budgets.month_view(month, include_pending=include_pending)
year_lines = svc.budgets.year_view(month, include_pending=include_pending)
pending_note = "" if include_pending else " " + _("Pending transactions excluded.")
rules = _("Spending nets refunds off; transfers between your accounts and card bill payments do not count; a parent "
          "category's budget covers its subcategories.")
month_name = format_long_month(month)

# ---- The month -----------------------------------------------------------------------------------------------------
st.subheader(month_name[:1].upper() + month_name[1:])
if not month_lines:
    st.info(_("No budgets for {month} yet. Set one below, or copy last month's.").format(month=month_name))
for currency in sorted({line.currency for line in month_lines}):
    mine = [line for line in month_lines if line.currency == currency]
    over = [line.category_name for line in mine if line.over]
    st.markdown(f"**{currency}**")
    if over:
        st.error(_("Over budget in {currency}: {categories}.").format(
            currency=currency, categories=escape_markdown(", ".join(over))), icon="🔴")
    st.dataframe(highlighted(lines_table(mine, currency, with_month=True)), hide_index=True, width="stretch",
                 key=f"budgets_month_{currency}")
st.caption(f"{format_period(month, last_of_month(month))}. {rules}{pending_note} "
           f"{as_of_caption(svc.reports.data_as_of())}")

# ---- The year to date ----------------------------------------------------------------------------------------------
bare_month = month_names()[month.month - 1]  # "December", "dezembro": the year is said once
st.subheader(_("{year} to the end of {month}").format(year=month.year, month=bare_month))
if not year_lines:
    st.caption(_("No budgets this year yet."))
for currency in sorted({line.currency for line in year_lines}):
    mine = [line for line in year_lines if line.currency == currency]
    st.markdown(f"**{currency}**")
    st.dataframe(highlighted(lines_table(mine, currency, with_month=False)), hide_index=True, width="stretch",
                 key=f"budgets_year_{currency}")
if year_lines:
    st.caption(_("The budgets of each month this year, against the spending of the months that have one (rollover "
                 "moves money between months, not in or out).") + pending_note)

# ---- The transactions behind a line --------------------------------------------------------------------------------
choices = {(line.category, line.currency): f"{line.category_name} ({line.currency})"
           for line in month_lines + year_lines}
if choices:
    st.subheader(_("The transactions behind a budget"))
    pick = st.columns([3, 1.5, 1.5], vertical_alignment="bottom")
    chosen = pick[0].selectbox(_("Budget"), list(choices), format_func=choices.__getitem__, key="budgets_drill")
    if chosen is not None:
        category, currency = chosen
        if pick[1].button(month_name, key="budgets_open_month", icon="🧾",
                          help=_("Transactions: this category (and its subcategories) in this month.")):
            hand_off_to_transactions(category, currency, month, last_of_month(month), include_pending)
        if pick[2].button(_("Year to date"), key="budgets_open_year", icon="🧾",
                          help=_("Transactions: this category from January to the end of {month}.").format(
                              month=bare_month)):
            hand_off_to_transactions(category, currency, date(month.year, 1, 1), last_of_month(month),
                                     include_pending)

# ---- Set or remove a budget ----------------------------------------------------------------------------------------
st.subheader(_("Set a budget for {month}").format(month=month_name))
categories = svc.transactions.category_options()
spending = categories[categories["kind"].isin(SPENDING_KINDS)]
category_labels = labelled(spending["id"])
currencies = sorted(set(svc.transactions.account_options()["currency"])) or ["BRL", "USD"]
with st.form("budgets_set", border=False):
    row = st.columns([3, 1, 1.5, 1.5], vertical_alignment="bottom")
    row[0].selectbox(_("Category"), list(category_labels), format_func=category_labels.__getitem__,
                     key="budgets_category", help=_("A parent category's budget covers its subcategories."))
    row[1].text_input(_("Currency"), value=currencies[0], max_chars=3, key="budgets_currency",
                      help=_("The currency of the accounts it covers: {currencies}.").format(
                          currencies=", ".join(currencies)))
    row[2].text_input(_("Amount per month"), key="budgets_amount", placeholder="1500.00")
    row[3].checkbox(_("Roll over"), key="budgets_rollover",
                    help=_("What is left (or overspent) at the end of the month carries into next month's budget."))
    st.form_submit_button(_("Save budget"), type="primary", on_click=save_budget, args=(month,))

budgets = svc.budgets.of_month(month)
if budgets:
    names = {line.budget_id: f"{line.category_name} ({line.currency}): {format_money(line.budget, line.currency)}"
             for line in month_lines}
    remove = st.columns([3, 1], vertical_alignment="bottom")
    doomed = remove[0].selectbox(_("Remove a budget"), [b.id for b in budgets], format_func=names.__getitem__,
                                 key="budgets_remove", index=None, placeholder=_("Choose a budget to remove"))
    remove[1].button(_("Remove"), key="budgets_delete", disabled=doomed is None, on_click=run_edit,
                     args=(svc.budgets.delete, doomed))
