"""Recurring: per currency, the subscriptions and recurring payments found in the history with their next expected
date and amount, price changes, payments that did not come, new subscriptions, and card installments as commitments
with an end; each series' transactions on demand; confirm, dismiss or edit a series (the choice survives every
re-sync). Bank text is shown as text."""

from datetime import date

import pandas as pd
import streamlit as st

from finance.formatting import escape_markdown, format_money
from finance.recurring import CADENCES, RecurringError, Series, remaining_total
from finance.ui.context import as_of_caption, services
from finance.ui.widgets import actor, flash, show_flash

st.title("Recurring")
svc = services()

PAGE = "recurring"
KIND_LABELS = {"subscription": "Subscription", "recurring": "Recurring payment", "installment": "Installments"}
STATUS_LABELS = {"detected": "Detected", "confirmed": "✅ Confirmed", "dismissed": "Dismissed"}


def money(amount, currency: str) -> str:
    """An amount as people read it, without the sign (the table says what goes out and what comes in)."""
    return format_money(abs(amount), currency)


def choose(series: Series, status: str, **edits: str | None) -> None:
    """A button or form callback: store the choice, say what happened on the next run."""
    try:
        flash(PAGE, "success", escape_markdown(svc.recurring.choose(series, status, actor=actor(), **edits)))
    except RecurringError as exc:
        flash(PAGE, "error", escape_markdown(str(exc)))


def save_edit(series: Series) -> None:
    state = st.session_state
    choose(series, series.status, name=state["recurring_edit_name"], amount=state["recurring_edit_amount"],
           cadence=state["recurring_edit_cadence"])


def flags(series: Series) -> str:
    marks = []
    if series.missed:
        marks.append("⚠️ missed")
    if series.is_new:
        marks.append("🆕 new")
    if series.price_changes:
        marks.append("📈 price changed")
    return ", ".join(marks)


def open_table(found: list[Series], currency: str) -> pd.DataFrame:
    """The open-ended series of one currency: what, how often, how much, when next."""
    return pd.DataFrame({
        "Name": [s.merchant for s in found],
        "Kind": [KIND_LABELS[s.kind] + (" (in)" if s.amount > 0 else "") for s in found],
        "Cadence": [s.cadence for s in found],
        "Amount": [money(s.amount, currency) for s in found],
        "Next expected": [s.next_date for s in found],
        "Next amount": [money(s.next_amount, currency) for s in found],
        "Since": [s.first_date for s in found],
        "Payments": [s.occurrences for s in found],
        "Status": [STATUS_LABELS[s.status] for s in found],
        "Notes": [flags(s) for s in found],
    })


def installment_table(found: list[Series], currency: str) -> pd.DataFrame:
    """The installment plans still running: each as a commitment with an end."""
    return pd.DataFrame({
        "Name": [s.merchant for s in found],
        "Installments left": [s.remaining for s in found],
        "Amount": [money(s.next_amount, currency) for s in found],
        "Next expected": [s.next_date for s in found],
        "Still to pay": [f"{money(remaining_total(s), currency)} over the next {s.remaining} "
                         f"month{'s' if s.remaining != 1 else ''}" for s in found],
        "Status": [STATUS_LABELS[s.status] for s in found],
    })


def news(found: list[Series], currency: str) -> list[str]:
    """Price changes, missed payments and new subscriptions, one sentence each (plain text)."""
    lines = []
    for s in found:
        for change in s.price_changes:
            lines.append(f"📈 {s.merchant} went from {money(change.before, currency)} to "
                         f"{money(change.after, currency)} in {change.on:%B %Y}.")
        if s.missed:
            lines.append(f"⚠️ {s.merchant}: the payment expected on {s.next_date:%Y-%m-%d} "
                         f"({money(s.next_amount, currency)}) has not come.")
        if s.is_new and s.kind != "installment":
            lines.append(f"🆕 New {KIND_LABELS[s.kind].lower()}: {s.merchant}, {money(s.amount, currency)} "
                         f"{s.cadence} since {s.first_date:%Y-%m-%d}.")
    return lines


def label(s: Series) -> str:
    return f"{s.merchant} · {KIND_LABELS[s.kind].lower()} · {s.cadence} · {money(s.next_amount, s.currency)}"


def series_panel(series: Series) -> None:
    """One series: its controls and, on demand, its transactions."""
    st.text(f"{series.merchant} — {KIND_LABELS[series.kind]}, {series.cadence}, {STATUS_LABELS[series.status]}")
    buttons = st.columns(3)
    if series.status != "confirmed":
        buttons[0].button("Confirm", key="recurring_confirm", on_click=choose, args=(series, "confirmed"))
    if series.status != "dismissed":
        buttons[1].button("Dismiss", key="recurring_dismiss", on_click=choose, args=(series, "dismissed"),
                          help="Hide it: it stays hidden after every sync.")
    else:
        buttons[1].button("Restore", key="recurring_restore", on_click=choose, args=(series, "detected"))
    with st.form("recurring_edit"):
        st.text_input("Name", value=series.merchant, max_chars=80, key="recurring_edit_name")
        st.text_input("Expected amount", value="", key="recurring_edit_amount",
                      placeholder=f"{abs(series.next_amount)} (leave empty to keep the detected one)")
        st.selectbox("Cadence", CADENCES, index=CADENCES.index(series.cadence), key="recurring_edit_cadence")
        st.form_submit_button("Save changes", on_click=save_edit, args=(series,))
    if st.toggle("Show its transactions", key="recurring_show_transactions"):
        st.dataframe(svc.recurring.transactions(series), hide_index=True, width="stretch",
                     column_config={"booked_date": st.column_config.DateColumn("Date", format="YYYY-MM-DD")})


show_flash(PAGE)
today = date.today()
options = st.columns(2)
include_pending = options[0].toggle("Include pending", value=True, key="recurring_pending")
show_dismissed = options[1].toggle("Show dismissed", value=False, key="recurring_show_dismissed")
everything = svc.recurring.series(today, include_dismissed=show_dismissed, include_pending=include_pending)
st.caption(as_of_caption(svc.reports.data_as_of()))

if not everything:
    st.info("No recurring payments found yet. Connect a bank (or try the demo on the Overview): subscriptions, bills "
            "and installments appear here once the history shows them at least three times.")
    st.stop()

for currency in sorted({s.currency for s in everything}):
    mine = [s for s in everything if s.currency == currency]
    running = [s for s in mine if s.kind != "installment"]
    plans = [s for s in mine if s.kind == "installment" and s.remaining]
    st.subheader(currency)
    soon = sum((s.next_amount for s in running + plans if s.status != "dismissed" and s.next_amount < 0
                and s.next_date is not None and (s.next_date - today).days <= 30), 0)
    committed = sum((remaining_total(s) for s in plans if s.status != "dismissed"), 0)
    figures = st.columns(3)
    figures[0].metric(f"Subscriptions ({currency})", sum(s.kind == "subscription" for s in running))
    figures[1].metric(f"Going out in the next 30 days ({currency})", money(soon, currency))
    figures[2].metric(f"Installments still to pay ({currency})", money(committed, currency))
    for line in news(mine, currency):
        st.text(line)
    if running:
        st.dataframe(open_table(running, currency), hide_index=True, width="stretch",
                     key=f"recurring_open_{currency}")
    if plans:
        st.markdown("**Installments** (commitments with an end)")
        st.dataframe(installment_table(plans, currency), hide_index=True, width="stretch",
                     key=f"recurring_plans_{currency}")

st.divider()
by_key = {s.key: s for s in everything}
chosen = st.selectbox("Open a series", list(by_key), index=None, format_func=lambda key: label(by_key[key]),
                      key="recurring_series",
                      placeholder="Choose a series to confirm, dismiss, edit or see its transactions")
if chosen in by_key:
    series_panel(by_key[chosen])
