"""Loans: every loan, mortgage and card with its balance, rate and next payment, and what is owed over time. A
liability's balance and available amount follow one sign rule: what is owed is negative."""

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from finance import charts
from finance.formatting import escape_markdown, format_money
from finance.i18n import N_, _, format_short_day
from finance.ui.context import as_of_caption, services

KINDS = {"credit": N_("Credit"), "student": N_("Student"), "mortgage": N_("Mortgage"),
         "personal": N_("Personal"), "financing": N_("Financing"), "overdraft": N_("Overdraft"),
         "other": N_("Other")}
"""finance.model.LiabilityKind, in words."""

st.title(_("Loans"))
svc = services()
today = date.today()
loans = svc.holdings.loans()
for problem in svc.holdings.problems().itertuples():
    if problem.resource == "liabilities":
        st.warning(escape_markdown(_("{institution}: loans could not be read ({message}). What is shown is from the "
                                     "last successful read.").format(institution=problem.institution,
                                                                     message=problem.message)))
if loans.empty:
    st.info(_("No loans, mortgages or cards with terms yet. Connect the bank that holds them on the Connections "
              "page; they appear after its next sync."))
    st.stop()


def money_or_blank(values: pd.Series, currencies: pd.Series) -> list[str]:
    return [format_money(v, c) if pd.notna(v) else "" for v, c in zip(values, currencies, strict=True)]


def installments(paid: object, total: object) -> str:
    if pd.isna(total):
        return ""
    return _("{paid} of {total}").format(paid=int(paid), total=int(total)) if pd.notna(paid) else f"{int(total)}"


def kind_label(kind: object) -> str:
    return str(KINDS.get(str(kind), str(kind).capitalize())) if pd.notna(kind) else ""


RATE = _("Rate (% a year)")
for currency in sorted(loans["currency"].unique()):
    mine = loans[loans["currency"] == currency]
    owed = -mine["balance"].fillna(0).sum()
    upcoming = mine[mine["next_payment_date"].notna()].sort_values("next_payment_date")
    cols = st.columns(2)
    cols[0].metric(_("Owed ({currency})").format(currency=currency), format_money(owed, currency),
                   help=_("Every loan and card listed here."))
    if not upcoming.empty:
        first = upcoming.iloc[0]
        cols[1].metric(_("Next payment"), format_money(first["next_payment_amount"], currency),
                       help=_("Due {day}.").format(day=format_short_day(first["next_payment_date"])))
    st.dataframe(pd.DataFrame({
        _("Loan"): [f"{a} ••{m}" if isinstance(m, str) and m else a for a, m in zip(mine["account"], mine["mask"],
                                                                                      strict=True)],
        _("Product"): mine["product"].fillna(""),
        _("Institution"): mine["institution"].fillna(""),
        _("Kind"): [kind_label(k) for k in mine["kind"]],
        _("Balance"): money_or_blank(mine["balance"], mine["currency"]),
        _("Available"): money_or_blank(mine["available_balance"], mine["currency"]),
        RATE: [float(r) if pd.notna(r) else None for r in mine["interest_rate"]],
        _("Next payment"): [format_short_day(d) if pd.notna(d) else "" for d in mine["next_payment_date"]],
        _("Next amount"): money_or_blank(mine["next_payment_amount"], mine["currency"]),
        _("Minimum"): money_or_blank(mine["minimum_payment"], mine["currency"]),
        _("Installments paid"): [installments(p, t) for p, t in zip(mine["installments_paid"],
                                                                    mine["installments_total"], strict=True)],
        _("Original principal"): money_or_blank(mine["original_principal"], mine["currency"]),
        _("Maturity"): [format_short_day(d) if pd.notna(d) else "" for d in mine["maturity_date"]],
        _("Overdue"): [_("yes") if o is True else "" for o in mine["is_overdue"]],
    }), hide_index=True, width="stretch", key=f"loans_{currency}",
        column_config={RATE: st.column_config.NumberColumn(format="%.2f")})

history = svc.reports.net_worth_by_day(today - timedelta(days=365), today, account_types=("loan",))
for currency in sorted(history["currency"].unique()) if not history.empty else []:
    st.plotly_chart(charts.balance_figure(history, currency, "net_worth", _("Loans balance")),
                    key=f"loans_history_{currency}")
st.caption(_("Balances are signed: what is owed is negative, and so is a loan's available amount. A loan's history "
             "is rebuilt from its payments (more was owed before each one); without payments its balance stands "
             "flat back to the connection's first day, so net worth never plunges on the day a loan was "
             "connected.") + " " + as_of_caption(svc.reports.data_as_of()))
