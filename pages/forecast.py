"""Forecast: each account's balance for the next 30 or 90 days from its current balance, the recurring payments,
income and card installments still to come and the card bills scheduled from their payment history, a warning naming
the first day a balance goes below its floor (zero, a card's limit, or the threshold the user sets per account), and
the form that sets those thresholds."""

from datetime import date

import pandas as pd
import streamlit as st

from finance import charts
from finance.errors import EditError
from finance.forecast import ThresholdError
from finance.formatting import escape_markdown, format_money
from finance.i18n import _, format_short_day, ngettext
from finance.ui.auth import editor
from finance.ui.context import as_of_caption, services
from finance.ui.widgets import flash, show_flash

st.title(_("Forecast"))
svc = services()

PAGE = "forecast"

show_flash(PAGE)
days = st.radio(_("Days ahead"), svc.forecast.HORIZONS, horizontal=True, key="forecast_horizon",
                format_func=lambda n: ngettext("{count} day", "{count} days", n).format(count=n))
today = date.today()
outlook = svc.forecast.outlook(today, days)
names = {a.id: a.name for a in outlook.accounts}
for warning in outlook.warnings:
    st.warning(escape_markdown(warning.text(format_money(warning.balance, warning.currency),
                                            format_money(warning.floor, warning.currency))), icon="⚠️")
if outlook.accounts and not outlook.warnings:
    st.success(_("No account is expected to go below its threshold, zero or its credit limit in the next {count} "
                 "days.").format(count=days))
for currency in sorted({a.currency for a in outlook.accounts}):
    st.plotly_chart(charts.forecast_figure(outlook.projection, currency), key=f"forecast_{currency}")
if outlook.bills:
    st.markdown("**" + _("Card bills") + "**")
    st.dataframe(pd.DataFrame({
        _("Due"): [format_short_day(b.day) for b in outlook.bills],
        _("Card"): [b.card for b in outlook.bills],
        _("Paid from"): [b.payer or _("an account not in the app") for b in outlook.bills],
        _("Amount"): [format_money(b.amount, b.currency) for b in outlook.bills],
        _("Amount is"): [_("estimated from the last 3 months") if b.estimated else _("owed now")
                         for b in outlook.bills]}),
        hide_index=True, key="forecast_bills")
if outlook.cards_without_due_day:
    st.info(escape_markdown(_("No bill scheduled for {cards}: no payment of these cards is in the history yet, so "
                              "their due day is not known.").format(cards=", ".join(outlook.cards_without_due_day))))
st.caption(_("From each account's current balance, the recurring payments, income and card installments still to "
             "come (Recurring payments; dismissed series are left out) and the card bills. A card's bill is due on "
             "the day of month its past payments usually landed on and is taken from the account that paid them: the "
             "next one pays what the card owes now, the later ones are estimated from the card's average monthly "
             "spending over the last 3 closed months.") + " " + as_of_caption(svc.reports.data_as_of()))

with st.form("forecast_threshold", clear_on_submit=False):
    st.markdown("**" + _("Warn me below a threshold") + "**")
    left, right = st.columns(2)
    account = left.selectbox(_("Account"), list(names), format_func=names.get, key="forecast_threshold_account")
    amount = right.text_input(_("Threshold (empty removes it)"), key="forecast_threshold_amount", max_chars=30,
                              placeholder=_("e.g. 500 or -1500.50"))
    if st.form_submit_button(_("Save threshold")) and account is not None:
        try:
            flash(PAGE, "success", svc.forecast.set_threshold(account, amount, actor=editor()))
        except (ThresholdError, EditError) as exc:
            flash(PAGE, "error", str(exc))
        st.rerun()
if outlook.thresholds:
    st.dataframe(pd.DataFrame({
        _("Account"): [names.get(k, k) for k in outlook.thresholds],
        _("Warn below"): [format_money(v, next((a.currency for a in outlook.accounts if a.id == k), ""))
                       for k, v in outlook.thresholds.items()]}), hide_index=True, key="forecast_thresholds")
