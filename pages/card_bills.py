"""Card bills: each card's current and next bill with closing and due dates, and what future installments commit
month by month. Bill payments are transfers between the user's own accounts: never spending."""

from datetime import date

import pandas as pd
import streamlit as st

from finance import charts, portfolio
from finance.formatting import escape_markdown, format_money
from finance.i18n import N_, _, format_month, format_short_day
from finance.ui.context import as_of_caption, services

st.title(_("Card bills"))
svc = services()
today = date.today()
for problem in svc.holdings.problems().itertuples():
    if problem.resource == "bills":
        st.warning(escape_markdown(_("{institution}: card bills could not be read ({message}). What is shown is from "
                                     "the last successful read.").format(institution=problem.institution,
                                                                         message=problem.message)))

STATES = {"open": N_("open: still taking purchases"), "closed": N_("closed: waiting for payment"), "paid": N_("paid"),
          "overdue": N_("overdue")}


def describe(bill: portfolio.Bill) -> str:
    state = STATES[bill.state(today)]
    if bill.closing_date:
        return _("closes {closing}, due {due} ({state})").format(
            closing=format_short_day(bill.closing_date), due=format_short_day(bill.due_date), state=state)
    return _("due {due} ({state})").format(due=format_short_day(bill.due_date), state=state)


cards = svc.holdings.card_bills(today)
if not cards:
    st.info(_("No card bills yet. Connect a bank whose cards have bills (faturas) on the Connections page; they "
              "appear after its next sync."))
for card in cards:
    st.subheader(escape_markdown(card.card))
    cols = st.columns(2)
    current = card.current
    cols[0].metric(_("Current bill"), format_money(current.total, current.currency), help=describe(current))
    cols[0].caption(escape_markdown(describe(current)) + (
        " · " + _("minimum {amount}").format(amount=format_money(current.minimum_payment, current.currency))
        if current.minimum_payment is not None else ""))
    if card.next is not None:
        cols[1].metric(_("Next bill, so far"), format_money(card.next.total, card.next.currency),
                       help=describe(card.next))
        cols[1].caption(escape_markdown(describe(card.next)))
    else:
        cols[1].caption(_("No later bill yet."))

st.subheader(_("Future installments"))
commitments = portfolio.committed_installments(svc.recurring.series(today), today)
if not commitments:
    st.caption(_("No installment purchases (parcelas) with installments still to come."))
for currency in sorted({c.currency for c in commitments}):
    st.markdown(_("**{total}** committed in installments still to come.").format(
        total=portfolio.commitment_sentence(commitments, currency)))
    months = pd.DataFrame([{"month": c.month, "amount": c.amount, "plans": c.plans} for c in commitments
                           if c.currency == currency])
    st.plotly_chart(charts.commitments_figure(months, currency), key=f"installments_{currency}")
    st.dataframe(pd.DataFrame({
        _("Month"): [format_month(m) for m in months["month"]],
        _("Installments"): [format_money(a, currency) for a in months["amount"]],
        _("Purchases"): months["plans"]}), hide_index=True, width="stretch", key=f"installments_table_{currency}")
st.caption(_("Installments come from the card's purchases in installments (e.g. 2/6: four still to come, one a "
             "month). Paying a bill moves money between your own accounts: it is a transfer, never counted as "
             "spending.") + " " + as_of_caption(svc.reports.data_as_of()))
