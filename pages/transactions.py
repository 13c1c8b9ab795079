"""Transactions: filter and search, fix a category (or make it the merchant's rule), note, delete/restore, export."""

from datetime import date
from decimal import Decimal

import pandas as pd
import streamlit as st

from finance.errors import EditError
from finance.filters import TransactionFilter
from finance.formatting import escape_markdown, format_money
from finance.ui import sandbox
from finance.ui.context import as_of_caption, services
from finance.ui.widgets import actor, flash, show_flash

st.title("Transactions")
svc = services()

DIRECTIONS = {"": "In and out", "out": "Money out", "in": "Money in"}
STATUS_LABELS = {"pending": "Pending", "posted": "Posted"}
SOURCE_LABELS = {"user": "set by you", "rule": "set by your rule for this merchant", "provider": "from the bank"}
TABLE = "txn_table"
PAGE = "txn"


def clear_selection() -> None:
    st.session_state[TABLE] = {"selection": {"rows": [], "columns": [], "cells": []}}
    st.session_state.pop("txn_selected", None)


def edit(action, *args, **kwargs) -> None:
    """A button callback: run one edit and report it; nothing stays selected, as the row may have left the view."""
    try:
        flash(PAGE, "success", action(*args, actor=actor(), **kwargs))
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
        return "🗑️ Deleted"
    return "⏳ Pending" if r.status == "pending" else "Posted"


def category(r) -> str:
    name = r.category_name if present(r.category_name) else r.category
    return {"rule": f"{name} (rule)", "user": f"{name} ✎"}.get(r.category_source, name)


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """The page's rows as people read them: money in each account's currency, status and installment in words."""
    records = list(rows.itertuples())
    return pd.DataFrame({
        "Date": rows["booked_date"],
        "Description": rows["description"],
        "Merchant": rows["merchant"].fillna(""),
        "Amount": [money(r.amount, r.currency) for r in records],
        "Status": [status(r) for r in records],
        "Category": [category(r) for r in records],
        "Original": [original(r) for r in records],
        "Installment": [installment(r) for r in records],
        "Account": [f"{r.account_name} ••{r.account_mask}" if present(r.account_mask) else r.account_name
                    for r in records],
        "Note": rows["note"].fillna(""),
    })


show_flash(PAGE)

as_of = svc.reports.data_as_of()
first_day, last_day = svc.transactions.date_range()
accounts = svc.transactions.account_options()
categories = svc.transactions.category_options()

if accounts.empty:
    st.info(f"No transactions yet. Connect {sandbox.first_bank()} to see how it works — no credentials or network "
            "needed.")
    st.page_link("pages/connections.py", label="Connect a bank", icon="🏦")
    st.stop()

st.caption(as_of_caption(as_of))
account_labels = dict(zip(accounts["id"], accounts["label"], strict=True))
category_labels = dict(zip(categories["id"], categories["label"], strict=True))

# ---- Filters -------------------------------------------------------------------------------------------------------
today = date.today()
row1 = st.columns([4, 3, 2], vertical_alignment="bottom")
text = row1[0].text_input("Search", key="txn_text", placeholder="Description, merchant or note")
period = row1[1].date_input("Period", value=(first_day or today, last_day or today), key="txn_period")
include_deleted = row1[2].toggle("Show deleted", key="txn_show_deleted")
row2 = st.columns([3, 3, 2, 2, 2, 2])
account_ids = row2[0].multiselect("Accounts", list(account_labels), format_func=account_labels.__getitem__,
                                  key="txn_accounts", placeholder="All accounts")
category_ids = row2[1].multiselect("Categories", list(category_labels), format_func=category_labels.__getitem__,
                                   key="txn_categories", placeholder="All categories",
                                   help="A category also finds its subcategories.")
statuses = row2[2].multiselect("Status", list(STATUS_LABELS), format_func=STATUS_LABELS.__getitem__,
                               key="txn_status", placeholder="Any status")
direction = row2[3].selectbox("Direction", list(DIRECTIONS), format_func=DIRECTIONS.__getitem__, key="txn_direction")
low = row2[4].number_input("Amount from", min_value=0.0, value=None, step=10.0, key="txn_min",
                           help="Size of the amount, in or out.")
high = row2[5].number_input("Amount to", min_value=0.0, value=None, step=10.0, key="txn_max")
if low is not None and high is not None and low > high:
    st.warning("The lower amount is above the upper one: they were swapped.")
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
    cols = st.columns(4)
    deleted = f", {total.deleted:,} deleted (not counted in the totals)" if total.deleted else ""
    cols[0].metric(f"Transactions ({total.currency})", f"{total.transactions:,}", help=f"In this view{deleted}.")
    cols[1].metric("Money in", format_money(total.money_in, total.currency))
    cols[2].metric("Money out", format_money(total.money_out, total.currency))
    cols[3].metric("Net", format_money(total.net, total.currency))

if result.total == 0:
    st.info("No transactions match these filters.")
else:
    st.caption(f"Showing {result.offset + 1:,}–{result.offset + len(result.rows):,} of {result.total:,}, newest "
               "first. Select a row to change its category, add a note or delete it.")
event = st.dataframe(table(result.rows), hide_index=True, width="stretch", key=TABLE, on_select="rerun",
                     selection_mode="single-row",
                     column_config={"Date": st.column_config.DateColumn("Date", format="YYYY-MM-DD")})
nav = st.columns([1, 1, 3, 1.5, 1.5], vertical_alignment="bottom")
nav[0].number_input("Page", min_value=1, max_value=pages, step=1, key="txn_page", help=f"{pages:,} pages")
nav[1].selectbox("Rows per page", [25, 50, 100, 200], index=1, key="txn_page_size")


def export(kind: str):
    """Built only when the button is pressed: the whole filtered view, in memory, never a connection secret."""
    return lambda: svc.transactions.export(filters, kind)


stamp = f"{today:%Y%m%d}"
nav[3].download_button("Export CSV", export("csv"), file_name=f"transactions-{stamp}.csv", mime="text/csv",
                       key="txn_export_csv", on_click="ignore", disabled=result.total == 0, icon="⬇️",
                       help="Every transaction in this view, not just this page.")
nav[4].download_button("Export Parquet", export("parquet"), file_name=f"transactions-{stamp}.parquet",
                       mime="application/vnd.apache.parquet", key="txn_export_parquet", on_click="ignore",
                       disabled=result.total == 0, icon="⬇️", help="Every transaction in this view, typed columns.")

if not rules.empty:
    with st.expander(f"Category rules ({len(rules)})"):
        for rule in rules.itertuples():
            line, remove = st.columns([5, 1])
            line.markdown(f"**{escape_markdown(str(rule.merchant))}** → {rule.category_name} · "
                          f"{rule.transactions:,} transactions")
            remove.button("Remove rule", key=f"txn_rule_{rule.id}", on_click=edit, args=(svc.rules.delete, rule.id))

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
    badges = (" :orange-badge[⏳ Pending]" if row["status"] == "pending" else "") + (
        " :red-badge[🗑️ Deleted]" if deleted else "") + (
        " :blue-badge[📥 Imported from a file]" if present(row["import_batch_id"]) else "")
    st.markdown(f"**{escape_markdown(str(row['description']))}** · {money(row['amount'], row['currency'])} · "
                f"{row['booked_date']}{badges}")
    details = [f"{row['institution']} · {row['account_name']}", f"category {SOURCE_LABELS[row['category_source']]}"]
    if merchant:
        details.insert(0, f"merchant {merchant}")
    if original(row):
        details.append(f"originally {original(row)}")
    if installment(row):
        details.append(f"installment {installment(row)}")
    st.caption(escape_markdown(" · ".join(details)))
    with st.form("txn_edit", border=False):
        left, right = st.columns(2)
        left.selectbox("Category", list(category_labels), format_func=category_labels.__getitem__, key="txn_category")
        left.checkbox(f"Use for every {merchant} transaction, past and future" if merchant
                      else "No merchant: a change applies to this transaction only",
                      key="txn_as_rule", disabled=merchant is None,
                      help="Saved as a rule. Transactions where you chose a category yourself keep theirs.")
        right.text_area("Note", key="txn_note", max_chars=svc.transactions.MAX_NOTE_LENGTH, height=68)
        st.form_submit_button("Save", type="primary", on_click=save, args=(row["id"],))
    actions = st.columns([1, 1, 4])
    if deleted:
        actions[0].button("Restore", key="txn_restore", on_click=edit, args=(svc.transactions.restore, row["id"]))
    else:
        actions[0].button("Delete", key="txn_delete", on_click=edit, args=(svc.transactions.delete, row["id"]),
                          help="Hidden everywhere; a re-sync never brings it back.")
    if row["category_source"] == "user":
        actions[1].button("Undo my category", key="txn_clear_category", on_click=edit,
                          args=(svc.transactions.set_category, row["id"], None),
                          help="Show the rule's or the bank's category again.")
