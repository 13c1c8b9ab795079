"""Cash flow: where the period's money came from and where it went, per currency, as a Sankey (income sources →
spending by category and savings; transfers between own accounts left out), and the transactions behind any flow.
The balance forecast has its own page (pages/forecast.py): it runs the recurring detection over the whole history."""

import streamlit as st

from finance import charts
from finance.formatting import format_money
from finance.i18n import _, format_number, format_period, ngettext
from finance.ui.context import as_of_caption, services
from finance.ui.widgets import date_column, period_picker, show_flash, transaction_rows

st.title(_("Cash flow"))
svc = services()

PAGE = "cash_flow"
DRILL_ROWS = 200

show_flash(PAGE)
first_day, last_day = svc.transactions.date_range()
if first_day is None:
    st.info(_("No transactions yet: connect a bank to see where your money comes from and goes."))
    st.page_link("pages/connections.py", label=_("Connect a bank"), icon="🏦")
    st.stop()

start, end, include_pending = period_picker(PAGE, first_day, last_day)
pending_note = "" if include_pending else " " + _("Pending transactions excluded.")
fresh = svc.reports.as_of_by_currency()
currencies = svc.reports.cash_flow_currencies(start, end, include_pending=include_pending)

# ---- The Sankey ----------------------------------------------------------------------------------------------------
if not currencies:
    st.info(_("No income or spending in {period}.").format(period=format_period(start, end)))
else:
    currency = st.radio(_("Currency"), currencies, horizontal=True, key="cash_flow_currency")
    flow = svc.reports.cash_flow(start, end, currency, include_pending=include_pending)
    figures = st.columns(3)
    figures[0].metric(_("Income ({currency})").format(currency=currency), format_money(flow.income, currency))
    figures[1].metric(_("Spending ({currency})").format(currency=currency), format_money(flow.spending, currency))
    figures[2].metric(_("Savings") if flow.savings >= 0 else _("From savings"),
                      format_money(abs(flow.savings), currency),
                      help=_("Income − spending in the period. Transfers between your own accounts, card bill "
                             "payments and investments count as neither; refunds net off spending."))
    chart, drill = st.columns([3, 2])
    chart.plotly_chart(charts.sankey_figure(flow), key="cash_flow_sankey")
    links = {f.label: f for f in flow.flows if f.flow_keys}
    with drill:
        # Streamlit's chart selection covers points, boxes and lassos, not a Sankey's links: the flows are listed here.
        chosen = st.selectbox(_("Transactions behind a flow"), list(links), index=None, key="cash_flow_link",
                              placeholder=_("Choose a flow"))
        if chosen is not None:
            link = links[chosen]
            rows, total = svc.reports.flow_transactions(start, end, currency, link.flow_keys,
                                                        include_pending=include_pending, limit=DRILL_ROWS)
            st.text(ngettext("{flow}: {amount} from {count} transaction.",
                             "{flow}: {amount} from {count} transactions.", total).format(
                flow=chosen, amount=format_money(link.amount, currency), count=format_number(total)))
            st.dataframe(transaction_rows(rows), hide_index=True, width="stretch", key="cash_flow_rows",
                         column_config=date_column())
            if total > len(rows):
                st.caption(_("The newest {shown} of {total}.").format(shown=format_number(len(rows)),
                                                                      total=format_number(total)))
    st.caption(f"{currency} · {format_period(start, end)}.{pending_note} " +
               _("Flows under {share} of their side are grouped as “Other”.").format(share="2 %") +
               f" {as_of_caption(fresh.get(currency))}")
