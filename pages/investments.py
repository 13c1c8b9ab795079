"""Investments: every holding with quantity, price, value, cost basis and gain, the investment accounts' value over
time, and the latest investment transactions. Bank and security names are shown as text, never Markdown."""

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from finance import charts
from finance.formatting import escape_markdown, format_money
from finance.ui.context import as_of_caption, services

st.title("Investments")
svc = services()
today = date.today()
positions = svc.holdings.positions()
for problem in svc.holdings.problems().itertuples():
    if problem.resource.startswith("investment"):
        st.warning(escape_markdown(f"{problem.institution}: {problem.resource.replace('_', ' ')} could not be "
                                   f"read ({problem.message}). What is shown is from the last successful read."))
if positions.empty:
    st.info("No investments yet. Connect a bank or broker that has them on the Connections page; holdings appear "
            "after its next sync.")
    st.stop()

for currency in sorted(positions["currency"].unique()):
    mine = positions[positions["currency"] == currency]
    value = mine["value"].sum()
    known = mine[mine["cost_basis"].notna()]
    gain = known["gain"].sum() if not known.empty else None
    cols = st.columns(3)
    cols[0].metric(f"Value ({currency})", format_money(value, currency))
    cols[1].metric("Cost basis", format_money(known["cost_basis"].sum(), currency) if not known.empty else "—",
                   help="Of the holdings whose cost the provider reports.")
    cols[2].metric("Gain", format_money(gain, currency) if gain is not None else "—",
                   help="Value minus cost basis, of the holdings whose cost is known (not realised).")
    st.dataframe(pd.DataFrame({
        "Security": mine["security"],
        "Ticker": mine["ticker"].fillna(""),
        "Account": mine["account"],
        "Quantity": [f"{q:,.4f}".rstrip("0").rstrip(".") for q in mine["quantity"]],
        "Price": [format_money(p, currency) for p in mine["price"]],
        "Value": [format_money(v, currency) for v in mine["value"]],
        "Cost basis": [format_money(c, currency) if pd.notna(c) else "" for c in mine["cost_basis"]],
        "Gain": [format_money(g, currency) if pd.notna(g) else "" for g in mine["gain"]],
        "Gain %": [float(g / c) if pd.notna(g) and pd.notna(c) and c else None
                   for g, c in zip(mine["gain"], mine["cost_basis"], strict=True)],
    }), hide_index=True, width="stretch", key=f"holdings_{currency}",
        column_config={"Gain %": st.column_config.NumberColumn("Gain %", format="percent")})

start = today - timedelta(days=365)
history = svc.reports.net_worth_by_day(start, today, account_types=("investment",))
for currency in sorted(history["currency"].unique()) if not history.empty else []:
    st.plotly_chart(charts.balance_figure(history, currency, "net_worth", "Investments value"),
                    key=f"investments_value_{currency}")
st.caption("Value over time: each holding's units go back through its buys and sells, priced between the trades' "
           "prices and today's; where no trade is known, today's value stands for the days before. "
           + as_of_caption(svc.reports.data_as_of()))

trades = svc.holdings.trades(today - timedelta(days=90), today)
if not trades.empty:
    st.subheader("Investment transactions (last 90 days)")
    st.dataframe(pd.DataFrame({
        "Date": trades["date"], "Account": trades["account"], "Security": trades["security"].fillna(""),
        "Type": trades["type"], "Quantity": trades["quantity"].astype("string").fillna(""),
        "Amount": [format_money(a, c) for a, c in zip(trades["amount"], trades["currency"], strict=True)],
        "Description": trades["description"]}), hide_index=True, width="stretch", key="investment_trades")
