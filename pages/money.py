"""Money: every amount in its account's currency, totals per currency, and a base-currency view at the dated
exchange rates you enter. Amounts with no rate in force are named and left out, never added at face value."""

from datetime import date

import pandas as pd
import streamlit as st

from finance import charts, money
from finance.formatting import format_money, format_rate
from finance.households import NotAllowed
from finance.i18n import _, format_period, format_short_day, format_timestamp
from finance.ui import sandbox
from finance.ui.auth import editor
from finance.ui.context import as_of_caption, services
from finance.ui.widgets import flash, period_picker, show_flash

st.title(_("Money"))
svc = services()

COMMON_CURRENCIES = ("BRL", "USD", "EUR", "GBP")
BALANCES = {"net_worth": _("net worth"), "assets": _("assets"), "liabilities": _("liabilities")}
FLOWS = {"income": _("income"), "spending": _("spending")}
PAGE = "money"


def add_rate() -> None:
    """The add form's callback: validate, store with its audit row, say what happened."""
    state = st.session_state
    try:
        rate = money.clean_rate(state["money_new_from"], state["money_new_to"], state["money_new_rate"],
                                state["money_new_date"], state["money_new_note"])
        svc.rates.add(rate, actor=editor())
    except (money.RateError, NotAllowed) as exc:
        flash(PAGE, "error", str(exc))
        return
    flash(PAGE, "success", _("Rate saved: {rate} from {day}.").format(
        rate=format_rate(rate.rate, rate.from_currency, rate.to_currency), day=format_short_day(rate.valid_from)))
    state["money_new_rate"] = ""
    state["money_new_note"] = ""


def save_rate(rate_id: str) -> None:
    state = st.session_state
    try:
        rate = money.clean_rate(state["money_edit_from"], state["money_edit_to"], state["money_edit_rate"],
                                state["money_edit_date"], state["money_edit_note"], rate_id=rate_id)
        changed = svc.rates.update(rate_id, rate, actor=editor())
    except (money.RateError, NotAllowed) as exc:
        flash(PAGE, "error", str(exc))
        return
    flash(PAGE, "success", _("Rate updated.") if changed else _("Nothing to save: the rate is unchanged."))


def delete_rate(rate_id: str) -> None:
    try:
        gone = svc.rates.delete(rate_id, actor=editor())
    except (money.RateError, NotAllowed) as exc:
        flash(PAGE, "error", str(exc))
        return
    st.session_state.pop("money_edit_id", None)
    st.session_state.pop("money_edit_loaded", None)
    flash(PAGE, "success", _("Rate deleted: {rate} from {day}.").format(
        rate=format_rate(gone.rate, gone.from_currency, gone.to_currency), day=format_short_day(gone.valid_from)))


show_flash(PAGE)

accounts = svc.accounts.summary()
as_of = svc.reports.data_as_of()
fresh = svc.reports.as_of_by_currency()
first_day, last_day = svc.transactions.date_range()
rates = svc.rates.all()

if accounts.empty:
    st.info(_("No accounts yet. Connect {bank} or try the demo on the Overview to see your money in each currency "
              "and in one.").format(bank=sandbox.first_bank()))
    st.page_link("pages/connections.py", label=_("Connect a bank"), icon="🏦")
    st.stop()

st.caption(as_of_caption(as_of))
today = date.today()
start, end, include_pending = period_picker("money_period", first_day, last_day)
pending_note = "" if include_pending else " " + _("Pending transactions excluded.")
period = format_period(start, end)

totals = svc.accounts.totals()
flows = svc.reports.daily_flows(start, end, include_pending=include_pending)
net_worth = svc.reports.net_worth_by_day(start, end)

# ---- Per currency: nothing converted -------------------------------------------------------------------------------
st.subheader(_("Per currency"))
currencies = sorted(set(accounts["currency"]))
per_currency = []
for code in currencies:
    balance = totals[totals["currency"] == code]
    flow = flows[flows["currency"] == code]
    first = balance.iloc[0] if not balance.empty else None
    per_currency.append({
        _("Currency"): code,
        _("Net worth"): format_money(None if first is None else first["net_worth"], code),
        _("Assets"): format_money(None if first is None else first["assets"], code),
        _("Liabilities"): format_money(None if first is None else first["liabilities"], code),
        _("Income in period"): format_money(sum(flow["income"], 0), code),
        _("Spending in period"): format_money(sum(flow["spending"], 0), code),
        _("Data as of"): format_timestamp(fresh.get(code)),
    })
st.dataframe(pd.DataFrame(per_currency), hide_index=True, width="stretch")
st.caption(_("Balances now; income and spending {period}.").format(period=period) + pending_note + " " +
           _("Each currency on its own line: nothing is converted here."))
st.dataframe(pd.DataFrame({
    _("Institution"): accounts["institution"],
    _("Account"): accounts["name"] + accounts["mask"].map(lambda m: f" ••{m}" if m else ""),
    _("Type"): [money.account_type_label(t) for t in accounts["type"]],
    _("Currency"): accounts["currency"],
    _("Balance"): [format_money(b, c) for b, c in zip(accounts["current_balance"], accounts["currency"],
                                                      strict=True)],
    _("As of"): [format_timestamp(w) for w in accounts["balance_as_of"]],
}), hide_index=True, width="stretch")

# ---- In one currency: converted at the rate in force on each amount's date -----------------------------------------
st.subheader(_("In one currency"))
options = sorted(set(currencies) | {r.from_currency for r in rates} | {r.to_currency for r in rates})
base = st.selectbox(_("Show everything in"), options, key="money_base",
                    help=_("Each amount is converted at the rate in force on its date: the latest rate dated on or "
                           "before it, for the pair in either direction."))
book = money.RateBook(rates)
balance_rows = [{"currency": a.currency, "day": a.balance_as_of if pd.notna(a.balance_as_of) else today,
                 "net_worth": a.current_balance, "assets": max(a.current_balance, 0),
                 "liabilities": max(-a.current_balance, 0)}
                for a in accounts.itertuples() if pd.notna(a.current_balance)]
in_base = money.to_base(balance_rows, list(BALANCES), base, book)
flows_base = money.to_base(flows.to_dict("records"), list(FLOWS), base, book)
balances, period_flows = st.columns(3), st.columns(3)
converted = _("Converted to {currency} at the rate in force on each amount's date.").format(currency=base) + \
    " " + as_of_caption(as_of)
in_period = f"{period}.{pending_note} {converted}"
now_help = _("Current balances.") + " " + converted
balances[0].metric(_("Net worth ({currency})").format(currency=base), format_money(in_base.totals["net_worth"], base),
                   help=now_help)
balances[1].metric(_("Assets"), format_money(in_base.totals["assets"], base), help=now_help)
balances[2].metric(_("Liabilities"), format_money(in_base.totals["liabilities"], base), help=now_help)
period_flows[0].metric(_("Income in period"), format_money(flows_base.totals["income"], base), help=in_period)
period_flows[1].metric(_("Spending in period"), format_money(flows_base.totals["spending"], base), help=in_period)
period_flows[2].metric(_("Income − spending"),
                       format_money(flows_base.totals["income"] - flows_base.totals["spending"], base), help=in_period)
for gap in in_base.gaps:
    st.warning(_("Balances:") + " " + money.describe_gap(gap, BALANCES), icon="⚠️")
for gap in flows_base.gaps:
    st.warning(_("Income and spending:") + " " + money.describe_gap(gap, FLOWS), icon="⚠️")
if in_base.complete and flows_base.complete:
    st.caption(_("Every amount is included.") + " " + converted)

series, series_gaps = money.series_to_base(net_worth, "net_worth", base, book)
st.plotly_chart(charts.base_net_worth_figure(series, base), key="money_net_worth")
for gap in series_gaps:
    st.warning(_("Net worth over time:") + " " + money.describe_gap(gap, {}), icon="⚠️")
st.caption(_("End-of-day balances {period}; the total line is drawn only on days where every currency converted.")
           .format(period=period) + " " + as_of_caption(as_of))

# ---- Exchange rates ------------------------------------------------------------------------------------------------
st.subheader(_("Exchange rates"))
st.caption(_("Rates you enter; each one is in force from its date until the next rate of the same pair (it converts "
             "both ways). Every change is recorded in the audit log."))
if rates:
    valid_from = _("Valid from")
    st.dataframe(pd.DataFrame({
        valid_from: [r.valid_from for r in rates],
        _("Rate"): [format_rate(r.rate, r.from_currency, r.to_currency) for r in rates],
        _("Reverse"): [format_rate(1 / r.rate, r.to_currency, r.from_currency) for r in rates],
        _("Note"): [r.note or "" for r in rates],
    }), hide_index=True, width="stretch",
        column_config={valid_from: st.column_config.DateColumn(valid_from, format=_("YYYY-MM-DD"))})
else:
    st.info(_("No rates yet: add one to see your {currencies} money in one currency.").format(
        currencies=_(" and ").join(currencies)))

choices = sorted(set(options) | set(COMMON_CURRENCIES))
others = [c for c in currencies if c != base]
with st.form("money_add_rate"):
    st.markdown("**" + _("Add a rate") + "**")
    row = st.columns([1, 1, 1.2, 1.2, 2])
    row[0].selectbox(_("From"), choices, index=choices.index(others[0] if others else base), key="money_new_from",
                     accept_new_options=True)
    row[1].selectbox(_("To"), choices, index=choices.index(base), key="money_new_to", accept_new_options=True)
    row[2].text_input(_("Rate"), key="money_new_rate", placeholder="5.4321",
                      help=_("How many units of To one unit of From buys; a comma or a dot as the decimal sign."))
    row[3].date_input(_("Valid from"), value=first_day or today, key="money_new_date", format=_("YYYY-MM-DD"))
    row[4].text_input(_("Note"), key="money_new_note", max_chars=money.MAX_NOTE_LENGTH,
                      placeholder=_("e.g. Banco Central PTAX"))
    st.form_submit_button(_("Add rate"), type="primary", on_click=add_rate)

if rates:
    labels = {r.id: f"{format_short_day(r.valid_from)} · {format_rate(r.rate, r.from_currency, r.to_currency)}"
              for r in rates}
    picked = st.selectbox(_("Edit or delete a rate"), list(labels), index=None, format_func=labels.get,
                          key="money_edit_id", placeholder=_("Choose a rate"))
    chosen = next((r for r in rates if r.id == picked), None)
    if chosen is not None:
        if st.session_state.get("money_edit_loaded") != chosen.id:  # a newly chosen rate fills the form
            st.session_state.update({
                "money_edit_loaded": chosen.id, "money_edit_from": chosen.from_currency,
                "money_edit_to": chosen.to_currency, "money_edit_rate": f"{chosen.rate.normalize():f}",
                "money_edit_date": chosen.valid_from, "money_edit_note": chosen.note or ""})
        with st.form("money_edit_rate_form"):
            row = st.columns([1, 1, 1.2, 1.2, 2])
            row[0].selectbox(_("From"), choices, key="money_edit_from", accept_new_options=True)
            row[1].selectbox(_("To"), choices, key="money_edit_to", accept_new_options=True)
            row[2].text_input(_("Rate"), key="money_edit_rate")
            row[3].date_input(_("Valid from"), key="money_edit_date", format=_("YYYY-MM-DD"))
            row[4].text_input(_("Note"), key="money_edit_note", max_chars=money.MAX_NOTE_LENGTH)
            st.form_submit_button(_("Save changes"), type="primary", on_click=save_rate, args=(chosen.id,))
        st.button(_("Delete this rate"), key="money_delete_rate", on_click=delete_rate, args=(chosen.id,))
