"""Overview: balances, net worth over time, income vs spending, spending by category, sync status."""

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from finance import charts
from finance.formatting import format_money, format_when
from finance.store import queries
from finance.ui.context import as_of_caption, services, status_badge

st.title("Overview")
svc = services()

with svc.engine.connect() as conn:
    status = queries.connections_status(conn)
    as_of = queries.data_as_of(conn)
    first_day, last_day = queries.transaction_date_range(conn)

if status.empty:
    st.info("No banks connected yet. Connect the sandbox bank **Pluggy Bank** (user `user-ok`, password "
            "`password-ok`) to see how it works — no credentials or network needed.")
    st.page_link("pages/connections.py", label="Connect a bank", icon="🏦")
    st.stop()

st.caption(as_of_caption(as_of))

today = date.today()
default_start = max(first_day or today, today - timedelta(days=365))
controls = st.columns([2, 1])
period = controls[0].date_input("Period", value=(default_start, last_day or today), key="period")
include_pending = controls[1].toggle("Include pending", value=True, key="include_pending")
start, end = period if isinstance(period, tuple) and len(period) == 2 else (default_start, last_day or today)

with svc.engine.connect() as conn:
    totals = queries.balance_totals(conn)
    accounts = queries.accounts_summary(conn)
    net_worth = queries.net_worth_by_day(conn, start, end)
    cashflow = queries.monthly_cashflow(conn, start, end, include_pending=include_pending)
    by_category = queries.spending_by_category(conn, start, end, include_pending=include_pending)

currencies = sorted(set(totals["currency"]) | set(cashflow["currency"]))
for currency in currencies:
    row = totals[totals["currency"] == currency]
    flows = cashflow[cashflow["currency"] == currency]
    balances, period_flows = st.columns(3), st.columns(3)
    if not row.empty:
        balances[0].metric(f"Net worth ({currency})", format_money(row.iloc[0]["net_worth"], currency))
        balances[1].metric("Assets", format_money(row.iloc[0]["assets"], currency))
        balances[2].metric("Liabilities", format_money(row.iloc[0]["liabilities"], currency))
    income, spending = flows["income"].sum(), flows["spending"].sum()
    period_flows[0].metric("Income in period", format_money(income, currency))
    period_flows[1].metric("Spending in period", format_money(spending, currency))
    period_flows[2].metric("Income − spending", format_money(income - spending, currency))

st.subheader("Accounts")
table = pd.DataFrame({
    "Institution": accounts["institution"],
    "Account": accounts["name"] + accounts["mask"].map(lambda m: f" ••{m}" if m else ""),
    "Type": accounts["type"].str.replace("_", " ").str.capitalize(),
    "Balance": [format_money(b, c) for b, c in zip(accounts["current_balance"], accounts["currency"], strict=True)],
    "Available": [format_money(b, c) if pd.notna(b) else "" for b, c in
                  zip(accounts["available_balance"], accounts["currency"], strict=True)],
    "Credit limit": [format_money(b, c) if pd.notna(b) else "" for b, c in
                     zip(accounts["credit_limit"], accounts["currency"], strict=True)],
})
st.dataframe(table, hide_index=True, width="stretch")

for currency in currencies:
    st.plotly_chart(charts.net_worth_figure(net_worth, currency), key=f"net_worth_{currency}")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.cashflow_figure(cashflow, currency), key=f"cashflow_{currency}")
    with right:
        if by_category[by_category["currency"] == currency].empty:
            st.info("No spending in this period.")
        else:
            st.plotly_chart(charts.category_figure(by_category, currency), key=f"categories_{currency}")

st.subheader("Sync status")
for row in status.itertuples():
    last = format_when(row.last_success_at)
    line = f"**{row.institution_name}** {status_badge(row.status)} · {row.accounts} accounts · last sync {last}"
    st.markdown(line)
    if row.last_outcome == "failed":
        st.error(f"Last sync failed: {row.last_message}", icon="⚠️")
    elif row.last_message:
        st.caption(row.last_message)
    if row.status_detail and row.status != "active":
        st.warning(row.status_detail)
