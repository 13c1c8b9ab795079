"""Cash flow: where the period's money came from and where it went, per currency, as a Sankey (income sources →
spending by category and savings; transfers between own accounts left out), and the transactions behind any flow.
The balance forecast has its own page (pages/forecast.py): it runs the recurring detection over the whole history."""

import pandas as pd
import streamlit as st

from finance import charts
from finance.formatting import format_money
from finance.ui.context import as_of_caption, services
from finance.ui.widgets import period_picker, show_flash

st.title("Cash flow")
svc = services()

PAGE = "cash_flow"
DRILL_ROWS = 200

show_flash(PAGE)
first_day, last_day = svc.transactions.date_range()
if first_day is None:
    st.info("No transactions yet: connect a bank to see where your money comes from and goes.")
    st.page_link("pages/connections.py", label="Connect a bank", icon="🏦")
    st.stop()

start, end, include_pending = period_picker(PAGE, first_day, last_day)
pending_note = "" if include_pending else " Pending transactions excluded."
fresh = svc.reports.as_of_by_currency()
currencies = svc.reports.cash_flow_currencies(start, end, include_pending=include_pending)

# ---- The Sankey ----------------------------------------------------------------------------------------------------
if not currencies:
    st.info(f"No income or spending between {start:%Y-%m-%d} and {end:%Y-%m-%d}.")
else:
    currency = st.radio("Currency", currencies, horizontal=True, key="cash_flow_currency")
    flow = svc.reports.cash_flow(start, end, currency, include_pending=include_pending)
    figures = st.columns(3)
    figures[0].metric(f"Income ({currency})", format_money(flow.income, currency))
    figures[1].metric(f"Spending ({currency})", format_money(flow.spending, currency))
    figures[2].metric("Savings" if flow.savings >= 0 else "From savings", format_money(abs(flow.savings), currency),
                      help="Income − spending in the period. Transfers between your own accounts, card bill "
                           "payments and investments count as neither; refunds net off spending.")
    chart, drill = st.columns([3, 2])
    chart.plotly_chart(charts.sankey_figure(flow), key="cash_flow_sankey")
    links = {f.label: f for f in flow.flows if f.flow_keys}
    with drill:
        # Streamlit's chart selection covers points, boxes and lassos, not a Sankey's links: the flows are listed here.
        chosen = st.selectbox("Transactions behind a flow", list(links), index=None, key="cash_flow_link",
                              placeholder="Choose a flow")
        if chosen is not None:
            link = links[chosen]
            rows, total = svc.reports.flow_transactions(start, end, currency, link.flow_keys,
                                                        include_pending=include_pending, limit=DRILL_ROWS)
            st.text(f"{chosen}: {format_money(link.amount, currency)} from {total:,} transactions.")
            st.dataframe(pd.DataFrame({
                "Date": rows["booked_date"], "Description": rows["description"],
                "Merchant": rows["merchant"].fillna(""),
                "Amount": [format_money(a, currency) for a in rows["amount"]],
                "Category": rows["category_name"],
                "Status": ["⏳ Pending" if s == "pending" else "Posted" for s in rows["status"]],
                "Account": rows["account_name"]}), hide_index=True, width="stretch", key="cash_flow_rows",
                column_config={"Date": st.column_config.DateColumn("Date", format="YYYY-MM-DD")})
            if total > len(rows):
                st.caption(f"The newest {len(rows):,} of {total:,}.")
    st.caption(f"{currency} · {start:%Y-%m-%d} – {end:%Y-%m-%d}.{pending_note} Flows under 2 % of their side are "
               f"grouped as “Other”. {as_of_caption(fresh.get(currency))}")
