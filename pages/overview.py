"""Overview: per currency the balances and key figures of the period (against the period before), net worth over
time, income vs spending, spending by category with its transactions, top merchants, credit-card use, and the
sync status. Every figure says how fresh its data is; BRL and USD are never added together."""

from datetime import date

import pandas as pd
import streamlit as st

from finance import charts, money
from finance.categories import category_label
from finance.demo import DEMO_BANKS, demo_available
from finance.filters import TransactionFilter
from finance.formatting import escape_markdown, format_money
from finance.i18n import _, format_number, format_period, format_short_day, format_timestamp, ngettext
from finance.ui import sandbox
from finance.ui.context import as_of_caption, services, status_badge
from finance.ui.widgets import date_column, period_picker, show_flash, start_demo, transaction_rows

st.title(_("Overview"))
svc = services()

DRILL_ROWS = 200
TRANSACTIONS_PAGE = "pages/transactions.py"


def signed(delta: object, currency: str) -> str | None:
    """A change of money for st.metric's delta: "+R$ 12,00", "-$3.50"; None without a comparison or a change."""
    if delta is None or delta == 0:
        return None
    return ("+" if delta > 0 else "") + format_money(delta, currency)


def percent(value: object) -> str:
    return "—" if value is None else f"{float(value):.0%}"


def points(delta: object) -> str | None:
    return None if delta is None or round(float(delta) * 100) == 0 else _("{points} pp").format(
        points=f"{float(delta) * 100:+.0f}")


def hand_off_to_transactions(category: str, start: date, end: date, include_pending: bool) -> None:
    """Open the Transactions page on this category and period: its filter widgets read these keys."""
    st.session_state.update({
        "txn_period": (start, end), "txn_categories": [category],
        "txn_status": [] if include_pending else ["posted"], "txn_text": "", "txn_accounts": [],
        "txn_direction": "", "txn_min": None, "txn_max": None, "txn_show_deleted": False,
    })
    st.switch_page(TRANSACTIONS_PAGE)


show_flash("overview")

status = svc.connections.status()
as_of = svc.reports.data_as_of()
first_day, last_day = svc.transactions.date_range()

if status.empty:
    st.info(_("No banks connected yet. Connect {bank} to see how it works — no credentials or network needed.")
            .format(bank=sandbox.first_bank()))
    if demo_available(svc):
        if st.button(_("Try the demo: connect two sandbox banks"), type="primary", icon="🚀", key="overview_demo"):
            start_demo(svc, "overview")
        st.caption(_("One click connects {banks} on the offline sandboxes (Brazil and the US) and syncs them: a few "
                     "seconds, no typing.").format(banks=_(" and ").join(f"**{b.name}**" for b in DEMO_BANKS)))
    st.page_link("pages/connections.py", label=_("Connect a bank"), icon="🏦")
    st.stop()

st.caption(as_of_caption(as_of))

# ---- The period ----------------------------------------------------------------------------------------------------
start, end, include_pending = period_picker("period", first_day, last_day)
previous_start, previous_end = money.previous_period(start, end)
previous_covered = first_day is not None and first_day <= previous_start

totals = svc.accounts.totals()
accounts = svc.accounts.summary()
fresh = svc.reports.as_of_by_currency()
net_worth = svc.reports.net_worth_by_day(start, end)
cashflow = svc.reports.monthly_cashflow(start, end, include_pending=include_pending)
by_category = svc.reports.spending_by_category(start, end, include_pending=include_pending)
figures = money.key_figures(svc.reports.period_figures(start, end, previous_start, include_pending=include_pending),
                            previous_covered=previous_covered)
merchants = svc.reports.top_merchants(start, end, include_pending=include_pending)
cards = money.card_use(accounts)
card_totals = money.card_use_totals(cards)

currencies = sorted(set(totals["currency"]) | set(figures))
comparison = (_("Compared with {period}.").format(period=format_period(previous_start, previous_end))
              if previous_covered else _("No comparison with the period before: the data does not go back that far."))
pending_note = "" if include_pending else " " + _("Pending transactions excluded.")
period = format_period(start, end)

# ---- Key figures per currency --------------------------------------------------------------------------------------
for currency in currencies:
    fresh_text = as_of_caption(fresh.get(currency))
    row = totals[totals["currency"] == currency]
    key = figures.get(currency) or money.KeyFigures(currency, money.PeriodFigures(), None)
    now = key.current
    balances, flows, more = st.columns(3), st.columns(3), st.columns(3)
    if not row.empty:
        help_balance = _("Current balances of your {currency} accounts.").format(currency=currency) + " " + fresh_text
        balances[0].metric(_("Net worth ({currency})").format(currency=currency),
                           format_money(row.iloc[0]["net_worth"], currency), help=help_balance)
        balances[1].metric(_("Assets"), format_money(row.iloc[0]["assets"], currency), help=help_balance)
        balances[2].metric(_("Liabilities"), format_money(row.iloc[0]["liabilities"], currency), help=help_balance)
    help_flow = _("{period}, {currency} accounts.").format(period=period, currency=currency) + \
        f" {comparison}{pending_note} {fresh_text}"
    flows[0].metric(_("Income in period"), format_money(now.income, currency),
                    signed(key.change("income"), currency), help=help_flow)
    flows[1].metric(_("Spending in period"), format_money(now.spending, currency),
                    signed(key.change("spending"), currency), delta_color="inverse", help=help_flow)
    flows[2].metric(_("Income − spending"), format_money(now.net, currency), signed(key.change("net"), currency),
                    help=help_flow)
    more[0].metric(_("Savings rate"), percent(now.savings_rate), points(key.change("savings_rate")),
                   help=_("Income minus spending, as a share of income (none without income).") + " " + help_flow)
    largest = (_("{description} on {day}.").format(description=escape_markdown(now.largest_description),
                                                   day=format_short_day(now.largest_day)) + " "
               if now.largest_description and now.largest_day else "")
    more[1].metric(_("Largest expense"), format_money(now.largest_expense, currency),
                   signed(key.change("largest_expense"), currency), delta_color="inverse",
                   help=f"{largest}{help_flow}")
    use = card_totals[card_totals["currency"] == currency]
    if not use.empty:
        card = use.iloc[0]
        owed, limit = format_money(card["used"], currency), format_money(card["credit_limit"], currency)
        more[2].metric(_("Credit card use"), percent(card["share"]),
                       help=ngettext("{owed} owed of {limit} limit on {count} card.",
                                     "{owed} owed of {limit} limit on {count} cards.", int(card["cards"])).format(
                           owed=owed, limit=limit, count=card["cards"]) + " " + fresh_text)
    st.caption(f"{currency}: {period}. {comparison}{pending_note} {fresh_text}")

# ---- Accounts ------------------------------------------------------------------------------------------------------
st.subheader(_("Accounts"))
table = pd.DataFrame({
    _("Institution"): accounts["institution"],
    _("Account"): accounts["name"] + accounts["mask"].map(lambda m: f" ••{m}" if m else ""),
    _("Type"): [money.account_type_label(t) for t in accounts["type"]],
    _("Balance"): [format_money(b, c) for b, c in zip(accounts["current_balance"], accounts["currency"],
                                                      strict=True)],
    _("Available"): [format_money(b, c) if pd.notna(b) else "" for b, c in
                     zip(accounts["available_balance"], accounts["currency"], strict=True)],
    _("Credit limit"): [format_money(b, c) if pd.notna(b) else "" for b, c in
                        zip(accounts["credit_limit"], accounts["currency"], strict=True)],
    _("As of"): [format_timestamp(w) for w in accounts["balance_as_of"]],
})
st.dataframe(table, hide_index=True, width="stretch")

# ---- Charts, top merchants and card use per currency ---------------------------------------------------------------
for currency in currencies:
    fresh_text = as_of_caption(fresh.get(currency))
    st.plotly_chart(charts.net_worth_figure(net_worth, currency), key=f"net_worth_{currency}")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.cashflow_figure(cashflow, currency), key=f"cashflow_{currency}")
    with right:
        if by_category[by_category["currency"] == currency].empty:
            st.info(_("No spending in this period."))
        else:
            st.plotly_chart(charts.category_figure(by_category, currency), key=f"categories_{currency}")
    st.caption(f"{currency} · {period}.{pending_note} {fresh_text}")

    left, right = st.columns(2)
    with left:
        st.markdown("**" + _("Top merchants ({currency})").format(currency=currency) + "**")
        top = merchants[merchants["currency"] == currency]
        if top.empty:
            st.caption(_("No spending at a named merchant in this period."))
        else:
            share = _("Share of spending")
            st.dataframe(pd.DataFrame({
                _("Merchant"): top["merchant"], _("Spending"): [format_money(v, currency) for v in top["spending"]],
                _("Transactions"): top["transactions"], share: top["share"]}),
                hide_index=True, width="stretch", key=f"merchants_{currency}",
                column_config={share: st.column_config.ProgressColumn(share, min_value=0.0, max_value=1.0,
                                                                      format="percent")})
    with right:
        st.markdown("**" + _("Credit cards against their limit ({currency})").format(currency=currency) + "**")
        mine = cards[cards["currency"] == currency]
        if mine.empty:
            st.caption(_("No {currency} credit card with a known limit.").format(currency=currency))
        else:
            use_label = _("Use")
            st.dataframe(pd.DataFrame({
                _("Card"): [f"{n} ••{m}" if isinstance(m, str) and m else n
                            for n, m in zip(mine["name"], mine["mask"], strict=True)],
                _("Owed"): [format_money(v, currency) for v in mine["used"]],
                _("Limit"): [format_money(v, currency) for v in mine["credit_limit"]],
                _("Available"): [format_money(v, currency) for v in mine["available"]],
                use_label: mine["share"]}),
                hide_index=True, width="stretch", key=f"cards_{currency}",
                column_config={use_label: st.column_config.ProgressColumn(use_label, min_value=0.0, max_value=1.0,
                                                                          format="percent")})
    st.caption(_("Merchants: {period}.").format(period=period) + pending_note + " " +
               _("Cards: current balances.") + " " + fresh_text)

# ---- Drill-down: the transactions behind a category ----------------------------------------------------------------
st.subheader(_("Spending by category: the transactions behind it"))
names = {cid: category_label(cid) for cid in by_category["category_id"].drop_duplicates()}
choice = st.selectbox(_("Category"), list(names), index=None, format_func=names.get, key="overview_category",
                      placeholder=_("Choose a category to see its transactions in this period"))
if choice is not None:
    filters = TransactionFilter(start=start, end=end, categories=(choice,),
                                statuses=() if include_pending else ("posted",))
    found = svc.transactions.page(filters, limit=DRILL_ROWS)
    for total in found.totals.itertuples():
        st.markdown(ngettext("**{category}** in {currency}: {count} transaction, {out} out, {into} in.",
                             "**{category}** in {currency}: {count} transactions, {out} out, {into} in.",
                             total.transactions).format(
            category=escape_markdown(names[choice]), currency=total.currency, count=format_number(total.transactions),
            out=format_money(total.money_out, total.currency), into=format_money(total.money_in, total.currency)))
    rows = found.rows
    st.dataframe(transaction_rows(rows), hide_index=True, width="stretch", key="overview_category_rows",
                 column_config=date_column())
    shown = _("The newest {shown} of {total}.").format(shown=format_number(len(rows)),
                                                       total=format_number(found.total)) \
        if found.total > len(rows) else ""
    st.caption(f"{period}.{pending_note} {shown} {as_of_caption(as_of)}")
    if st.button(_("Open in Transactions"), icon="🧾", key="overview_open_transactions",
                 help=_("The Transactions page filtered on this category and period: change categories, export.")):
        hand_off_to_transactions(choice, start, end, include_pending)

# ---- Sync status ---------------------------------------------------------------------------------------------------
st.subheader(_("Sync status"))
for row in status.itertuples():
    last = format_timestamp(row.last_success_at)
    line = f"**{escape_markdown(str(row.institution_name))}** {status_badge(row.status)} · " + ngettext(
        "{count} account", "{count} accounts", row.accounts).format(count=row.accounts) + " · " + \
        _("last sync {when}").format(when=last)
    st.markdown(line)
    if row.last_outcome == "failed":
        st.error(_("Last sync failed: {message}").format(message=escape_markdown(str(row.last_message))),
                 icon="⚠️")
    elif row.last_message:
        st.caption(escape_markdown(str(row.last_message)))
    if row.status_detail and row.status != "active":
        st.warning(escape_markdown(str(row.status_detail)))
