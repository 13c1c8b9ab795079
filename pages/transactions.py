"""Transactions: filter and search, fix a category (or make it the merchant's rule), note, delete/restore, export."""

from datetime import date
from decimal import Decimal

import pandas as pd
import streamlit as st

from finance.categories import labelled
from finance.errors import EditError
from finance.filters import TransactionFilter
from finance.formatting import escape_markdown, format_money
from finance.households import Permission
from finance.i18n import N_, _, format_number, format_short_day, ngettext
from finance.ui import sandbox
from finance.ui.auth import audited, can, editor
from finance.ui.context import as_of_caption, services
from finance.ui.widgets import flash, show_flash

st.title(_("Transactions"))
svc = services()
may_edit = can(Permission.EDIT)  # a viewer sees every control disabled (and every action refuses)

DIRECTIONS = {"": N_("In and out"), "out": N_("Money out"), "in": N_("Money in")}
STATUS_LABELS = {"pending": N_("Pending"), "posted": N_("Posted")}
SOURCE_LABELS = {"user": N_("set by you"), "rule": N_("set by your rule for this merchant"),
                 "provider": N_("from the bank")}
TABLE = "txn_table"
PAGE = "txn"


def clear_selection() -> None:
    st.session_state[TABLE] = {"selection": {"rows": [], "columns": [], "cells": []}}
    st.session_state.pop("txn_selected", None)


def edit(action, *args, **kwargs) -> None:
    """A button callback: run one edit and report it; nothing stays selected, as the row may have left the view."""
    try:
        flash(PAGE, "success", action(*args, actor=editor(), **kwargs))
    except EditError as exc:
        flash(PAGE, "error", str(exc))
    clear_selection()


def save(transaction_id: str) -> None:
    """The edit form's callback: its category (optionally as the merchant's rule) and note, in one transaction."""
    state = st.session_state
    edit(svc.transactions.save_edits, transaction_id, category=state["txn_category"], note=state["txn_note"],
         as_rule=state["txn_as_rule"])


def present(value: object) -> bool:
    """Not None, NaN, NaT or empty (pandas turns a missing string into NaN)."""
    return not pd.isna(value) and value != ""


def money(amount: object, currency: object) -> str:
    return format_money(amount, str(currency)) if present(amount) and present(currency) else ""


def original(r) -> str:
    """A foreign purchase's amount in its own currency."""
    return money(r.original_amount, r.original_currency) if present(r.original_currency) and \
        r.original_currency != r.currency else ""


def installment(r) -> str:
    return f"{int(r.installment_number)}/{int(r.installment_total)}" if present(r.installment_number) and \
        present(r.installment_total) else ""


def status(r) -> str:
    if present(r.deleted_at):
        return "🗑️ " + _("Deleted")
    return "⏳ " + _("Pending") if r.status == "pending" else _("Posted")


def category(r) -> str:
    name = _(r.category_name) if present(r.category_name) else r.category
    return {"rule": _("{category} (rule)").format(category=name), "user": f"{name} ✎"}.get(r.category_source, name)


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """The page's rows as people read them: money in each account's currency, status and installment in words."""
    records = list(rows.itertuples())
    return pd.DataFrame({
        _("Date"): rows["booked_date"],
        _("Description"): rows["description"],
        _("Merchant"): rows["merchant"].fillna(""),
        _("Amount"): [money(r.amount, r.currency) for r in records],
        _("Status"): [status(r) for r in records],
        _("Category"): [category(r) for r in records],
        _("Original"): [original(r) for r in records],
        _("Installment"): [installment(r) for r in records],
        _("Account"): [f"{r.account_name} ••{r.account_mask}" if present(r.account_mask) else r.account_name
                       for r in records],
        _("Note"): rows["note"].fillna(""),
    })


show_flash(PAGE)

as_of = svc.reports.data_as_of()
first_day, last_day = svc.transactions.date_range()
accounts = svc.transactions.account_options()
categories = svc.transactions.category_options()

if accounts.empty:
    st.info(_("No transactions yet. Connect {bank} to see how it works — no credentials or network needed.").format(
        bank=sandbox.first_bank()))
    st.page_link("pages/connections.py", label=_("Connect a bank"), icon="🏦")
    st.stop()

st.caption(as_of_caption(as_of))
account_labels = dict(zip(accounts["id"], accounts["label"], strict=True))
category_labels = labelled(categories["id"])

# ---- Filters -------------------------------------------------------------------------------------------------------
today = date.today()
row1 = st.columns([4, 3, 2], vertical_alignment="bottom")
text = row1[0].text_input(_("Search"), key="txn_text", placeholder=_("Description, merchant or note"))
period = row1[1].date_input(_("Period"), value=(first_day or today, last_day or today), key="txn_period",
                            format=_("YYYY-MM-DD"))
include_deleted = row1[2].toggle(_("Show deleted"), key="txn_show_deleted")
row2 = st.columns([3, 3, 2, 2, 2, 2])
account_ids = row2[0].multiselect(_("Accounts"), list(account_labels), format_func=account_labels.__getitem__,
                                  key="txn_accounts", placeholder=_("All accounts"))
category_ids = row2[1].multiselect(_("Categories"), list(category_labels), format_func=category_labels.__getitem__,
                                   key="txn_categories", placeholder=_("All categories"),
                                   help=_("A category also finds its subcategories."))
statuses = row2[2].multiselect(_("Status"), list(STATUS_LABELS), format_func=lambda s: str(STATUS_LABELS[s]),
                               key="txn_status", placeholder=_("Any status"))
direction = row2[3].selectbox(_("Direction"), list(DIRECTIONS), format_func=lambda d: str(DIRECTIONS[d]),
                              key="txn_direction")
low = row2[4].number_input(_("Amount from"), min_value=0.0, value=None, step=10.0, key="txn_min",
                           help=_("Size of the amount, in or out."))
high = row2[5].number_input(_("Amount to"), min_value=0.0, value=None, step=10.0, key="txn_max")
if low is not None and high is not None and low > high:
    st.warning(_("The lower amount is above the upper one: they were swapped."))
    low, high = high, low
start, end = period if isinstance(period, tuple) and len(period) == 2 else (None, None)
filters = TransactionFilter(
    start=start, end=end, account_ids=tuple(account_ids), categories=tuple(category_ids), statuses=tuple(statuses),
    direction=direction or None, min_amount=None if low is None else Decimal(str(low)),
    max_amount=None if high is None else Decimal(str(high)), text=text, include_deleted=include_deleted)

# ---- One page of the view, its totals, export ----------------------------------------------------------------------
page_size = int(st.session_state.get("txn_page_size", 50))
if st.session_state.get("txn_view") != (filters, page_size):  # a new view starts on page 1 with nothing selected
    st.session_state["txn_view"] = (filters, page_size)
    st.session_state["txn_page"] = 1
    clear_selection()
page_number = max(1, int(st.session_state.get("txn_page", 1)))
result = svc.transactions.page(filters, limit=page_size, offset=(page_number - 1) * page_size)
pages = max(1, -(-result.total // page_size))
if page_number > pages:  # the view shrank (an edit, a sync): show its last page
    page_number = st.session_state["txn_page"] = pages
    result = svc.transactions.page(filters, limit=page_size, offset=(pages - 1) * page_size)
rules = svc.rules.all()

for total in result.totals.itertuples():
    # Each tile as wide as its figure, wrapping to a new line when the page is narrow: an amount is never cut
    # ("R$ 251.203,45" is wider than a quarter of the page at the default width).
    tiles = st.container(horizontal=True, gap="large")
    deleted = _("{count} deleted (not counted in the totals)").format(count=format_number(total.deleted))
    tiles.metric(_("Transactions ({currency})").format(currency=total.currency), format_number(total.transactions),
                 help=_("In this view, {deleted}.").format(deleted=deleted) if total.deleted else _("In this view."),
                 width="content")
    tiles.metric(_("Money in"), format_money(total.money_in, total.currency), width="content")
    tiles.metric(_("Money out"), format_money(total.money_out, total.currency), width="content")
    tiles.metric(_("Net"), format_money(total.net, total.currency), width="content")

if result.total == 0:
    st.info(_("No transactions match these filters."))
else:
    st.caption(_("Showing {first}–{last} of {total}, newest first. Select a row to change its category, add a note "
                 "or delete it.").format(first=format_number(result.offset + 1),
                                         last=format_number(result.offset + len(result.rows)),
                                         total=format_number(result.total)))
event = st.dataframe(table(result.rows), hide_index=True, width="stretch", key=TABLE, on_select="rerun",
                     selection_mode="single-row",
                     column_config={_("Date"): st.column_config.DateColumn(_("Date"), format=_("YYYY-MM-DD"))})
nav = st.columns([1, 1, 3, 1.5, 1.5], vertical_alignment="bottom")
nav[0].number_input(_("Page"), min_value=1, max_value=pages, step=1, key="txn_page",
                    help=ngettext("{count} page", "{count} pages", pages).format(count=format_number(pages)))
nav[1].selectbox(_("Rows per page"), [25, 50, 100, 200], index=1, key="txn_page_size")


def export(kind: str):
    """Built only when the button is pressed: the whole filtered view, in memory, never a connection secret."""
    return audited("export", "transactions", {"format": kind, "filters": repr(filters)},
                   lambda: svc.transactions.export(filters, kind))


stamp = f"{today:%Y%m%d}"
nav[3].download_button(_("Export CSV"), export("csv"), file_name=f"transactions-{stamp}.csv", mime="text/csv",
                       key="txn_export_csv", on_click="ignore", disabled=result.total == 0, icon="⬇️",
                       help=_("Every transaction in this view, not just this page."))
nav[4].download_button(_("Export Parquet"), export("parquet"), file_name=f"transactions-{stamp}.parquet",
                       mime="application/vnd.apache.parquet", key="txn_export_parquet", on_click="ignore",
                       disabled=result.total == 0, icon="⬇️", help=_("Every transaction in this view, typed columns."))

if not rules.empty:
    with st.expander(_("Category rules ({count})").format(count=len(rules))):
        for rule in rules.itertuples():
            line, remove = st.columns([5, 1])
            uses = ngettext("{count} transaction", "{count} transactions", rule.transactions).format(
                count=format_number(rule.transactions))
            line.markdown(f"**{escape_markdown(str(rule.merchant))}** → {escape_markdown(_(rule.category_name))} · "
                          f"{uses}")
            remove.button(_("Remove rule"), key=f"txn_rule_{rule.id}", on_click=edit,
                          args=(svc.rules.delete, rule.id), disabled=not may_edit)

# ---- The selected transaction --------------------------------------------------------------------------------------
picked = event.selection.rows if event is not None else []
if not picked or picked[0] >= len(result.rows):
    st.stop()
row = result.rows.iloc[picked[0]]
merchant = row["merchant"] if present(row["merchant"]) else None
if st.session_state.get("txn_selected") != row["id"]:  # a newly selected row: its values fill the form
    st.session_state["txn_selected"] = row["id"]
    st.session_state["txn_category"] = row["category"] if row["category"] in category_labels else None
    st.session_state["txn_note"] = row["note"] if present(row["note"]) else ""
    st.session_state["txn_as_rule"] = False

with st.container(border=True):
    deleted = present(row["deleted_at"])
    badges = (" :orange-badge[⏳ " + _("Pending") + "]" if row["status"] == "pending" else "") + (
        " :red-badge[🗑️ " + _("Deleted") + "]" if deleted else "") + (
        " :blue-badge[📥 " + _("Imported from a file") + "]" if present(row["import_batch_id"]) else "")
    st.markdown(f"**{escape_markdown(str(row['description']))}** · {money(row['amount'], row['currency'])} · "
                f"{format_short_day(row['booked_date'])}{badges}")
    details = [f"{row['institution']} · {row['account_name']}",
               _("category {source}").format(source=SOURCE_LABELS[row["category_source"]])]
    if merchant:
        details.insert(0, _("merchant {merchant}").format(merchant=merchant))
    if original(row):
        details.append(_("originally {amount}").format(amount=original(row)))
    if installment(row):
        details.append(_("installment {number}").format(number=installment(row)))
    st.caption(escape_markdown(" · ".join(details)))
    with st.form("txn_edit", border=False):
        left, right = st.columns(2)
        left.selectbox(_("Category"), list(category_labels), format_func=category_labels.__getitem__,
                       key="txn_category")
        left.checkbox(_("Use for every {merchant} transaction, past and future").format(
                          merchant=escape_markdown(merchant)) if merchant
                      else _("No merchant: a change applies to this transaction only"),
                      key="txn_as_rule", disabled=merchant is None,
                      help=_("Saved as a rule. Transactions where you chose a category yourself keep theirs."))
        right.text_area(_("Note"), key="txn_note", max_chars=svc.transactions.MAX_NOTE_LENGTH, height=68)
        st.form_submit_button(_("Save"), type="primary", on_click=save, args=(row["id"],), disabled=not may_edit)
    actions = st.columns([1, 1, 4])
    if deleted:
        actions[0].button(_("Restore"), key="txn_restore", on_click=edit, args=(svc.transactions.restore, row["id"]),
                          disabled=not may_edit)
    else:
        actions[0].button(_("Delete"), key="txn_delete", on_click=edit, args=(svc.transactions.delete, row["id"]),
                          help=_("Hidden everywhere; a re-sync never brings it back."), disabled=not may_edit)
    if row["category_source"] == "user":
        actions[1].button(_("Undo my category"), key="txn_clear_category", on_click=edit,
                          args=(svc.transactions.set_category, row["id"], None),
                          help=_("Show the rule's or the bank's category again."), disabled=not may_edit)
