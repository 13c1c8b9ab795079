"""Recurring: per currency, the subscriptions and recurring payments found in the history with their next expected
date and amount, price changes, payments that did not come, new subscriptions, and card installments as commitments
with an end; each series' transactions on demand; confirm, dismiss or edit a series (the choice survives every
re-sync). Bank text is shown as text."""

from datetime import date

import pandas as pd
import streamlit as st

from finance.formatting import format_money
from finance.households import NotAllowed
from finance.i18n import N_, _, format_long_month, format_short_day, ngettext
from finance.recurring import CADENCE_LABELS, CADENCES, RecurringError, Series, remaining_total
from finance.ui.auth import editor
from finance.ui.context import as_of_caption, services
from finance.ui.widgets import date_column, flash, show_flash, status_text

st.title(_("Recurring"))
svc = services()

PAGE = "recurring"
KIND_LABELS = {"subscription": N_("Subscription"), "recurring": N_("Recurring payment"),
               "installment": N_("Installments")}
KIND_NAMES = {"subscription": N_("subscription"), "recurring": N_("recurring payment"),
              "installment": N_("installments")}
STATUS_LABELS = {"detected": N_("Detected"), "confirmed": N_("✅ Confirmed"), "dismissed": N_("Dismissed")}


def cadence(series: Series) -> str:
    return str(CADENCE_LABELS[series.cadence])


def money(amount, currency: str) -> str:
    """An amount as people read it, without the sign (the table says what goes out and what comes in)."""
    return format_money(abs(amount), currency)


def choose(series: Series, status: str, **edits: str | None) -> None:
    """A button or form callback: store the choice, say what happened on the next run."""
    try:
        flash(PAGE, "success", svc.recurring.choose(series, status, actor=editor(), **edits))
    except (RecurringError, NotAllowed) as exc:
        flash(PAGE, "error", str(exc))


def save_edit(series: Series) -> None:
    state = st.session_state
    choose(series, series.status, name=state["recurring_edit_name"], amount=state["recurring_edit_amount"],
           cadence=state["recurring_edit_cadence"])


def flags(series: Series) -> str:
    marks = []
    if series.missed:
        marks.append("⚠️ " + _("missed"))
    if series.is_new:
        marks.append("🆕 " + _("new"))
    if series.price_changes:
        marks.append("📈 " + _("price changed"))
    return ", ".join(marks)


def open_table(found: list[Series], currency: str) -> pd.DataFrame:
    """The open-ended series of one currency: what, how often, how much, when next."""
    return pd.DataFrame({
        _("Name"): [s.merchant for s in found],
        _("Kind"): [str(KIND_LABELS[s.kind]) + (" " + _("(in)") if s.amount > 0 else "") for s in found],
        _("Cadence"): [cadence(s) for s in found],
        _("Amount"): [money(s.amount, currency) for s in found],
        _("Next expected"): [format_short_day(s.next_date) for s in found],
        _("Next amount"): [money(s.next_amount, currency) for s in found],
        _("Since"): [format_short_day(s.first_date) for s in found],
        _("Payments"): [s.occurrences for s in found],
        _("Status"): [str(STATUS_LABELS[s.status]) for s in found],
        _("Notes"): [flags(s) for s in found],
    })


def installment_table(found: list[Series], currency: str) -> pd.DataFrame:
    """The installment plans still running: each as a commitment with an end."""
    return pd.DataFrame({
        _("Name"): [s.merchant for s in found],
        _("Installments left"): [s.remaining for s in found],
        _("Amount"): [money(s.next_amount, currency) for s in found],
        _("Next expected"): [format_short_day(s.next_date) for s in found],
        _("Still to pay"): [ngettext("{amount} over the next {count} month", "{amount} over the next {count} months",
                                     s.remaining).format(amount=money(remaining_total(s), currency),
                                                         count=s.remaining) for s in found],
        _("Status"): [str(STATUS_LABELS[s.status]) for s in found],
    })


def news(found: list[Series], currency: str) -> list[str]:
    """Price changes, missed payments and new subscriptions, one sentence each (plain text)."""
    lines = []
    for s in found:
        for change in s.price_changes:
            lines.append("📈 " + _("{name} went from {before} to {after} in {month}.").format(
                name=s.merchant, before=money(change.before, currency), after=money(change.after, currency),
                month=format_long_month(change.on)))
        if s.missed:
            lines.append("⚠️ " + _("{name}: the payment expected on {day} ({amount}) has not come.").format(
                name=s.merchant, day=format_short_day(s.next_date), amount=money(s.next_amount, currency)))
        if s.is_new and s.kind != "installment":
            lines.append("🆕 " + _("New {kind}: {name}, {amount} {cadence} since {day}.").format(
                kind=KIND_NAMES[s.kind], name=s.merchant, amount=money(s.amount, currency), cadence=cadence(s),
                day=format_short_day(s.first_date)))
    return lines


def label(s: Series) -> str:
    return f"{s.merchant} · {KIND_NAMES[s.kind]} · {cadence(s)} · {money(s.next_amount, s.currency)}"


def series_panel(series: Series) -> None:
    """One series: its controls and, on demand, its transactions."""
    st.text(f"{series.merchant} — {KIND_LABELS[series.kind]}, {cadence(series)}, {STATUS_LABELS[series.status]}")
    buttons = st.columns(3)
    if series.status != "confirmed":
        buttons[0].button(_("Confirm"), key="recurring_confirm", on_click=choose, args=(series, "confirmed"))
    if series.status != "dismissed":
        buttons[1].button(_("Dismiss"), key="recurring_dismiss", on_click=choose, args=(series, "dismissed"),
                          help=_("Hide it: it stays hidden after every sync."))
    else:
        buttons[1].button(_("Restore"), key="recurring_restore", on_click=choose, args=(series, "detected"))
    with st.form("recurring_edit"):
        st.text_input(_("Name"), value=series.merchant, max_chars=80, key="recurring_edit_name")
        st.text_input(_("Expected amount"), value="", key="recurring_edit_amount",
                      placeholder=_("{amount} (leave empty to keep the detected one)").format(
                          amount=abs(series.next_amount)))
        st.selectbox(_("Cadence"), CADENCES, index=CADENCES.index(series.cadence), key="recurring_edit_cadence",
                     format_func=lambda c: str(CADENCE_LABELS[c]))
        st.form_submit_button(_("Save changes"), on_click=save_edit, args=(series,))
    if st.toggle(_("Show its transactions"), key="recurring_show_transactions"):
        rows = svc.recurring.transactions(series)
        st.dataframe(pd.DataFrame({
            _("Date"): rows["booked_date"], _("Description"): rows["description"],
            _("Amount"): [format_money(a, c) for a, c in zip(rows["amount"], rows["currency"], strict=True)],
            _("Status"): [status_text(s) for s in rows["status"]]}),
            hide_index=True, width="stretch", column_config=date_column())


show_flash(PAGE)
today = date.today()
options = st.columns(2)
include_pending = options[0].toggle(_("Include pending"), value=True, key="recurring_pending")
show_dismissed = options[1].toggle(_("Show dismissed"), value=False, key="recurring_show_dismissed")
everything = svc.recurring.series(today, include_dismissed=show_dismissed, include_pending=include_pending)
st.caption(as_of_caption(svc.reports.data_as_of()))

if not everything:
    st.info(_("No recurring payments found yet. Connect a bank (or try the demo on the Overview): subscriptions, "
              "bills and installments appear here once the history shows them at least three times."))
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
    figures[0].metric(_("Subscriptions ({currency})").format(currency=currency),
                      sum(s.kind == "subscription" for s in running))
    figures[1].metric(_("Going out in the next 30 days ({currency})").format(currency=currency), money(soon, currency))
    figures[2].metric(_("Installments still to pay ({currency})").format(currency=currency),
                      money(committed, currency))
    for line in news(mine, currency):
        st.text(line)
    if running:
        st.dataframe(open_table(running, currency), hide_index=True, width="stretch",
                     key=f"recurring_open_{currency}")
    if plans:
        st.markdown(_("**Installments** (commitments with an end)"))
        st.dataframe(installment_table(plans, currency), hide_index=True, width="stretch",
                     key=f"recurring_plans_{currency}")

st.divider()
by_key = {s.key: s for s in everything}
chosen = st.selectbox(_("Open a series"), list(by_key), index=None, format_func=lambda key: label(by_key[key]),
                      key="recurring_series",
                      placeholder=_("Choose a series to confirm, dismiss, edit or see its transactions"))
if chosen in by_key:
    series_panel(by_key[chosen])
