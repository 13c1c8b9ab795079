"""Investments: every holding with quantity, price, value, cost basis and gain, the investment accounts' value over
time, and the latest investment transactions. Bank and security names are shown as text, never Markdown."""

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from finance import charts, portfolio
from finance.formatting import escape_markdown, format_money
from finance.i18n import N_, _, format_number
from finance.ui.context import as_of_caption, services
from finance.ui.widgets import date_column

TRADE_TYPES = {"buy": N_("buy"), "sell": N_("sell"), "dividend": N_("dividend"), "fee": N_("fee"),
               "transfer": N_("transfer"), "cash": N_("cash"), "other": N_("other")}

st.title(_("Investments"))
svc = services()
today = date.today()
positions = svc.holdings.positions()
for problem in svc.holdings.problems().itertuples():
    if problem.resource.startswith("investment"):
        resource = portfolio.resource_label(problem.resource)
        st.warning(escape_markdown(_("{institution}: {resource} could not be read ({message}). What is shown is from "
                                     "the last successful read.").format(
            institution=problem.institution, resource=resource, message=problem.message)))
if positions.empty:
    st.info(_("No investments yet. Connect a bank or broker that has them on the Connections page; holdings appear "
              "after its next sync."))
    st.stop()

GAIN_PERCENT = _("Gain %")
for currency in sorted(positions["currency"].unique()):
    mine = positions[positions["currency"] == currency]
    value = mine["value"].sum()
    known = mine[mine["cost_basis"].notna()]
    gain = known["gain"].sum() if not known.empty else None
    cols = st.columns(3)
    cols[0].metric(_("Value ({currency})").format(currency=currency), format_money(value, currency))
    cols[1].metric(_("Cost basis"), format_money(known["cost_basis"].sum(), currency) if not known.empty else "—",
                   help=_("Of the holdings whose cost the provider reports."))
    cols[2].metric(_("Gain"), format_money(gain, currency) if gain is not None else "—",
                   help=_("Value minus cost basis, of the holdings whose cost is known (not realised)."))
    st.dataframe(pd.DataFrame({
        _("Security"): mine["security"],
        _("Ticker"): mine["ticker"].fillna(""),
        _("Account"): mine["account"],
        _("Quantity"): [format_number(float(q), 4).rstrip("0").rstrip(",.") for q in mine["quantity"]],
        _("Price"): [format_money(p, currency) for p in mine["price"]],
        _("Value"): [format_money(v, currency) for v in mine["value"]],
        _("Cost basis"): [format_money(c, currency) if pd.notna(c) else "" for c in mine["cost_basis"]],
        _("Gain"): [format_money(g, currency) if pd.notna(g) else "" for g in mine["gain"]],
        GAIN_PERCENT: [float(g / c) if pd.notna(g) and pd.notna(c) and c else None
                       for g, c in zip(mine["gain"], mine["cost_basis"], strict=True)],
    }), hide_index=True, width="stretch", key=f"holdings_{currency}",
        column_config={GAIN_PERCENT: st.column_config.NumberColumn(GAIN_PERCENT, format="percent")})

start = today - timedelta(days=365)
history = svc.reports.net_worth_by_day(start, today, account_types=("investment",))
for currency in sorted(history["currency"].unique()) if not history.empty else []:
    st.plotly_chart(charts.balance_figure(history, currency, "net_worth", _("Investments value")),
                    key=f"investments_value_{currency}")
st.caption(_("Value over time: each holding's units go back through its buys and sells, priced between the trades' "
             "prices and today's; where no trade is known, today's value stands for the days before.") + " "
           + as_of_caption(svc.reports.data_as_of()))

trades = svc.holdings.trades(today - timedelta(days=90), today)
if not trades.empty:
    st.subheader(_("Investment transactions (last 90 days)"))
    st.dataframe(pd.DataFrame({
        _("Date"): trades["date"], _("Account"): trades["account"], _("Security"): trades["security"].fillna(""),
        _("Type"): [str(TRADE_TYPES.get(t, t)) for t in trades["type"]],
        _("Quantity"): trades["quantity"].astype("string").fillna(""),
        _("Amount"): [format_money(a, c) for a, c in zip(trades["amount"], trades["currency"], strict=True)],
        _("Description"): trades["description"]}), hide_index=True, width="stretch", key="investment_trades",
        column_config=date_column())
