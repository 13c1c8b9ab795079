"""Overview: per currency the balances and key figures of the period (against the period before), net worth over
time, income vs spending, spending by category with its transactions, top merchants, credit-card use, and the
sync status. Every figure says how fresh its data is; BRL and USD are never added together."""

from datetime import date

import pandas as pd
import streamlit as st

from finance import charts, money
from finance.demo import DEMO_BANKS, demo_available
from finance.filters import TransactionFilter
from finance.formatting import format_money, format_when
from finance.ui import sandbox
from finance.ui.context import as_of_caption, services, status_badge
from finance.ui.widgets import period_picker, show_flash, start_demo

st.title("Overview")
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
    return None if delta is None or round(float(delta) * 100) == 0 else f"{float(delta) * 100:+.0f} pp"


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
    st.info(f"No banks connected yet. Connect {sandbox.first_bank()} to see how it works — no credentials or "
            "network needed.")
    if demo_available(svc):
        if st.button("Try the demo: connect two sandbox banks", type="primary", icon="🚀", key="overview_demo"):
            start_demo(svc, "overview")
        st.caption("One click connects " + " and ".join(f"**{b.name}**" for b in DEMO_BANKS) +
                   " on the offline sandboxes (Brazil and the US) and syncs them: a few seconds, no typing.")
    st.page_link("pages/connections.py", label="Connect a bank", icon="🏦")
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
comparison = (f"Compared with {previous_start:%Y-%m-%d} – {previous_end:%Y-%m-%d}." if previous_covered else
              "No comparison with the period before: the data does not go back that far.")
pending_note = "" if include_pending else " Pending transactions excluded."

# ---- Key figures per currency --------------------------------------------------------------------------------------
for currency in currencies:
    fresh_text = as_of_caption(fresh.get(currency))
    row = totals[totals["currency"] == currency]
    key = figures.get(currency) or money.KeyFigures(currency, money.PeriodFigures(), None)
    now = key.current
    balances, flows, more = st.columns(3), st.columns(3), st.columns(3)
    if not row.empty:
        help_balance = f"Current balances of your {currency} accounts. {fresh_text}"
        balances[0].metric(f"Net worth ({currency})", format_money(row.iloc[0]["net_worth"], currency),
                           help=help_balance)
        balances[1].metric("Assets", format_money(row.iloc[0]["assets"], currency), help=help_balance)
        balances[2].metric("Liabilities", format_money(row.iloc[0]["liabilities"], currency), help=help_balance)
    help_flow = f"{start:%Y-%m-%d} – {end:%Y-%m-%d}, {currency} accounts. {comparison}{pending_note} {fresh_text}"
    flows[0].metric("Income in period", format_money(now.income, currency), signed(key.change("income"), currency),
                    help=help_flow)
    flows[1].metric("Spending in period", format_money(now.spending, currency),
                    signed(key.change("spending"), currency), delta_color="inverse", help=help_flow)
    flows[2].metric("Income − spending", format_money(now.net, currency), signed(key.change("net"), currency),
                    help=help_flow)
    more[0].metric("Savings rate", percent(now.savings_rate), points(key.change("savings_rate")),
                   help="Income minus spending, as a share of income (none without income). " + help_flow)
    largest = (f"{now.largest_description} on {now.largest_day:%Y-%m-%d}. " if now.largest_description and
               now.largest_day else "")
    more[1].metric("Largest expense", format_money(now.largest_expense, currency),
                   signed(key.change("largest_expense"), currency), delta_color="inverse",
                   help=f"{largest}{help_flow}")
    use = card_totals[card_totals["currency"] == currency]
    if not use.empty:
        card = use.iloc[0]
        owed, limit = format_money(card["used"], currency), format_money(card["credit_limit"], currency)
        more[2].metric("Credit card use", percent(card["share"]),
                       help=f"{owed} owed of {limit} limit on {card['cards']} card(s). {fresh_text}")
    st.caption(f"{currency}: {start:%Y-%m-%d} – {end:%Y-%m-%d}. {comparison}{pending_note} {fresh_text}")

# ---- Accounts ------------------------------------------------------------------------------------------------------
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
    "As of": [format_when(w) for w in accounts["balance_as_of"]],
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
            st.info("No spending in this period.")
        else:
            st.plotly_chart(charts.category_figure(by_category, currency), key=f"categories_{currency}")
    st.caption(f"{currency} · {start:%Y-%m-%d} – {end:%Y-%m-%d}.{pending_note} {fresh_text}")

    left, right = st.columns(2)
    with left:
        st.markdown(f"**Top merchants ({currency})**")
        top = merchants[merchants["currency"] == currency]
        if top.empty:
            st.caption("No spending at a named merchant in this period.")
        else:
            st.dataframe(pd.DataFrame({
                "Merchant": top["merchant"], "Spending": [format_money(v, currency) for v in top["spending"]],
                "Transactions": top["transactions"], "Share of spending": top["share"]}),
                hide_index=True, width="stretch", key=f"merchants_{currency}",
                column_config={"Share of spending": st.column_config.ProgressColumn(
                    "Share of spending", min_value=0.0, max_value=1.0, format="percent")})
    with right:
        st.markdown(f"**Credit cards against their limit ({currency})**")
        mine = cards[cards["currency"] == currency]
        if mine.empty:
            st.caption(f"No {currency} credit card with a known limit.")
        else:
            st.dataframe(pd.DataFrame({
                "Card": [f"{n} ••{m}" if isinstance(m, str) and m else n for n, m in zip(mine["name"], mine["mask"],
                                                                                        strict=True)],
                "Owed": [format_money(v, currency) for v in mine["used"]],
                "Limit": [format_money(v, currency) for v in mine["credit_limit"]],
                "Available": [format_money(v, currency) for v in mine["available"]],
                "Use": mine["share"]}),
                hide_index=True, width="stretch", key=f"cards_{currency}",
                column_config={"Use": st.column_config.ProgressColumn("Use", min_value=0.0, max_value=1.0,
                                                                     format="percent")})
    st.caption(f"Merchants: {start:%Y-%m-%d} – {end:%Y-%m-%d}.{pending_note} Cards: current balances. {fresh_text}")

# ---- Drill-down: the transactions behind a category ----------------------------------------------------------------
st.subheader("Spending by category: the transactions behind it")
names = by_category.drop_duplicates("category_id").set_index("category_id")["category"].to_dict()
choice = st.selectbox("Category", list(names), index=None, format_func=names.get, key="overview_category",
                      placeholder="Choose a category to see its transactions in this period")
if choice is not None:
    filters = TransactionFilter(start=start, end=end, categories=(choice,),
                                statuses=() if include_pending else ("posted",))
    found = svc.transactions.page(filters, limit=DRILL_ROWS)
    for total in found.totals.itertuples():
        st.markdown(f"**{names[choice]}** in {total.currency}: {total.transactions:,} transactions, "
                    f"{format_money(total.money_out, total.currency)} out, "
                    f"{format_money(total.money_in, total.currency)} in.")
    rows = found.rows
    st.dataframe(pd.DataFrame({
        "Date": rows["booked_date"], "Description": rows["description"], "Merchant": rows["merchant"].fillna(""),
        "Amount": [format_money(a, c) for a, c in zip(rows["amount"], rows["currency"], strict=True)],
        "Category": rows["category_name"].fillna(rows["category"]),
        "Status": ["⏳ Pending" if s == "pending" else "Posted" for s in rows["status"]],
        "Account": rows["account_name"]}), hide_index=True, width="stretch", key="overview_category_rows",
        column_config={"Date": st.column_config.DateColumn("Date", format="YYYY-MM-DD")})
    shown = f"The newest {len(rows):,} of {found.total:,}." if found.total > len(rows) else ""
    st.caption(f"{start:%Y-%m-%d} – {end:%Y-%m-%d}.{pending_note} {shown} {as_of_caption(as_of)}")
    if st.button("Open in Transactions", icon="🧾", key="overview_open_transactions",
                 help="The Transactions page filtered on this category and period: change categories, export."):
        hand_off_to_transactions(choice, start, end, include_pending)

# ---- Sync status ---------------------------------------------------------------------------------------------------
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
