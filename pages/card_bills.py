"""Card bills: each card's current and next bill with closing and due dates, and what future installments commit
month by month. Bill payments are transfers between the user's own accounts: never spending."""

from datetime import date

import pandas as pd
import streamlit as st

from finance import charts, portfolio
from finance.formatting import escape_markdown, format_money
from finance.ui.context import as_of_caption, services

st.title("Card bills")
svc = services()
today = date.today()
for problem in svc.holdings.problems().itertuples():
    if problem.resource == "bills":
        st.warning(escape_markdown(f"{problem.institution}: card bills could not be read ({problem.message}). "
                                   "What is shown is from the last successful read."))

STATES = {"open": "open: still taking purchases", "closed": "closed: waiting for payment", "paid": "paid",
          "overdue": "overdue"}


def describe(bill: portfolio.Bill) -> str:
    closing = f"closes {bill.closing_date:%Y-%m-%d}, " if bill.closing_date else ""
    return f"{closing}due {bill.due_date:%Y-%m-%d} ({STATES[bill.state(today)]})"


cards = svc.holdings.card_bills(today)
if not cards:
    st.info("No card bills yet. Connect a bank whose cards have bills (faturas) on the Connections page; they appear "
            "after its next sync.")
for card in cards:
    st.subheader(escape_markdown(card.card))
    cols = st.columns(2)
    current = card.current
    cols[0].metric("Current bill", format_money(current.total, current.currency), help=describe(current))
    cols[0].caption(escape_markdown(describe(current)) + (
        f" · minimum {format_money(current.minimum_payment, current.currency)}"
        if current.minimum_payment is not None else ""))
    if card.next is not None:
        cols[1].metric("Next bill, so far", format_money(card.next.total, card.next.currency),
                       help=describe(card.next))
        cols[1].caption(escape_markdown(describe(card.next)))
    else:
        cols[1].caption("No later bill yet.")

st.subheader("Future installments")
commitments = portfolio.committed_installments(svc.recurring.series(today), today)
if not commitments:
    st.caption("No installment purchases (parcelas) with installments still to come.")
for currency in sorted({c.currency for c in commitments}):
    st.markdown(f"**{portfolio.commitment_sentence(commitments, currency)}** committed in installments still to "
                "come.")
    months = pd.DataFrame([{"month": c.month, "amount": c.amount, "plans": c.plans} for c in commitments
                           if c.currency == currency])
    st.plotly_chart(charts.commitments_figure(months, currency), key=f"installments_{currency}")
    st.dataframe(pd.DataFrame({
        "Month": [f"{m:%Y-%m}" for m in months["month"]],
        "Installments": [format_money(a, currency) for a in months["amount"]],
        "Purchases": months["plans"]}), hide_index=True, width="stretch", key=f"installments_table_{currency}")
st.caption("Installments come from the card's purchases in installments (e.g. 2/6: four still to come, one a month). "
           "Paying a bill moves money between your own accounts: it is a transfer, never counted as spending. "
           + as_of_caption(svc.reports.data_as_of()))
