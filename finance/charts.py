"""Plotly figure builders: data in, figure out. No Streamlit, no SQL. Bank text (account, category and merchant
names) goes in through escape_plot_text: plotly would draw the HTML in it."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from finance.cashflow import MIDDLE, CashFlow
from finance.formatting import escape_plot_text
from finance.i18n import _, format_month, number_separators

INCOME_COLOR = "#2e7d32"
SPENDING_COLOR = "#c62828"
NET_COLOR = "#1565c0"


def _layout(fig: go.Figure, title: str, currency: str) -> go.Figure:
    fig.update_layout(title=title, margin={"l": 10, "r": 10, "t": 50, "b": 10}, height=360,
                      legend={"orientation": "h", "y": -0.15}, yaxis_title=currency, hovermode="x unified",
                      separators=number_separators())
    return fig


def _month_axis(fig: go.Figure, days: pd.Series) -> None:
    """Month ticks named in the interface language ("mar. 2026"; Plotly's own are English only), at most about a
    dozen, and hovered dates in its order (numbers only: no month names to translate)."""
    values = pd.to_datetime(pd.Series(days)).dropna()
    if values.empty:
        return
    months = pd.date_range(values.min().to_period("M").to_timestamp(), values.max(), freq="MS")
    step = max(1, -(-len(months) // 12))
    ticks = list(months[::step])
    fig.update_xaxes(tickvals=ticks, ticktext=[format_month(t) for t in ticks], hoverformat=_("%Y-%m-%d"))


def net_worth_figure(frame: pd.DataFrame, currency: str) -> go.Figure:
    """Net worth, assets and liabilities over time for one currency."""
    data = frame[frame["currency"] == currency]
    fig = go.Figure()
    fig.add_scatter(x=data["day"], y=data["net_worth"].astype(float), name=_("Net worth"),
                    line={"color": NET_COLOR})
    fig.add_scatter(x=data["day"], y=data["assets"].astype(float), name=_("Assets"),
                    line={"color": INCOME_COLOR, "dash": "dot"})
    fig.add_scatter(x=data["day"], y=(-data["liabilities"].astype(float)), name=_("Liabilities"),
                    line={"color": SPENDING_COLOR, "dash": "dot"})
    _month_axis(fig, data["day"])
    return _layout(fig, _("Net worth ({currency})").format(currency=currency), currency)


def cashflow_figure(frame: pd.DataFrame, currency: str) -> go.Figure:
    """Income against spending per month for one currency."""
    data = frame[frame["currency"] == currency]
    fig = go.Figure()
    months = [format_month(m) for m in pd.to_datetime(data["month"])]
    fig.add_bar(x=months, y=data["income"].astype(float), name=_("Income"), marker_color=INCOME_COLOR)
    fig.add_bar(x=months, y=data["spending"].astype(float), name=_("Spending"), marker_color=SPENDING_COLOR)
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    return _layout(fig, _("Income vs spending per month ({currency})").format(currency=currency), currency)


def category_figure(frame: pd.DataFrame, currency: str) -> go.Figure:
    """Spending by category, largest at the top, for one currency."""
    data = frame[frame["currency"] == currency].sort_values("spending")
    fig = go.Figure(go.Bar(x=data["spending"].astype(float), y=[escape_plot_text(_(name)) for name in data["category"]],
                           orientation="h", marker_color=SPENDING_COLOR, customdata=data["transactions"],
                           hovertemplate=_("%{y}: %{x:,.2f} (%{customdata} transactions)") + "<extra></extra>"))
    fig = _layout(fig, _("Spending by category ({currency})").format(currency=currency), currency)
    fig.update_layout(yaxis_title=None, xaxis_title=currency, height=max(300, 28 * len(data) + 80))
    return fig


def base_net_worth_figure(series: pd.DataFrame, base: str) -> go.Figure:
    """Net worth over time in the base currency: each currency's share converted (dotted) and the total, drawn
    only on days where every currency converted (a gap in the line rather than a face-value sum)."""
    fig = go.Figure()
    fig.add_scatter(x=series["day"], y=series["total"].astype(float),
                    name=_("Net worth in {currency}").format(currency=base), line={"color": NET_COLOR},
                    connectgaps=False)
    for code in (c for c in series.columns if c not in ("day", "total")):
        fig.add_scatter(x=series["day"], y=series[code].astype(float),
                        name=_("from {currency} accounts").format(currency=code), line={"dash": "dot"},
                        connectgaps=False)
    _month_axis(fig, series["day"])
    return _layout(fig, _("Net worth in {currency}").format(currency=base), base)


def sankey_figure(flow: CashFlow) -> go.Figure:
    """One currency's cash flow as a Sankey: income sources → money in → spending by category and savings. Node
    labels are bank text, escaped (plotly would render tags such as <a> or <b> in a label)."""
    middle = str(MIDDLE)
    into = [f for f in flow.flows if f.target == middle]
    out_of = [f for f in flow.flows if f.source == middle]
    labels = [*(f.source for f in into), middle, *(f.target for f in out_of)]
    middle = len(into)
    colors = [INCOME_COLOR] * len(into) + [NET_COLOR] + [
        NET_COLOR if f.kind == "savings" else SPENDING_COLOR for f in out_of]
    ordered = [*into, *out_of]
    links = [(i, middle) for i in range(len(into))] + [(middle, middle + 1 + j) for j in range(len(out_of))]
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": [escape_plot_text(label) for label in labels], "color": colors, "pad": 14, "thickness": 16,
              "hovertemplate": "%{label}: %{value:,.2f}<extra></extra>"},
        link={"source": [s for s, _ in links], "target": [t for _, t in links],
              "value": [float(f.amount) for f in ordered], "customdata": [f.transactions for f in ordered],
              "hovertemplate": _("%{source.label} → %{target.label}: %{value:,.2f} (%{customdata} transactions)")
                               + "<extra></extra>"}))
    fig.update_layout(title=_("Cash flow ({currency})").format(currency=flow.currency),
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, separators=number_separators(),
                      height=max(360, 30 * max(len(into), len(out_of)) + 100))
    return fig


def forecast_figure(projection: pd.DataFrame, currency: str) -> go.Figure:
    """Each account's expected balance per day for one currency (account names escaped: they are bank text)."""
    data = projection[projection["currency"] == currency]
    fig = go.Figure()
    for account_id, rows in data.groupby("account_id", sort=False):
        fig.add_scatter(x=rows["day"], y=rows["balance"].astype(float), name=escape_plot_text(rows["account"].iloc[0]),
                        line={"shape": "hv"}, legendgroup=str(account_id))
    fig.add_hline(y=0, line={"color": SPENDING_COLOR, "dash": "dot", "width": 1})
    _month_axis(fig, data["day"])
    return _layout(fig, _("Expected balances ({currency})").format(currency=currency), currency)


def balance_figure(frame: pd.DataFrame, currency: str, column: str, title: str) -> go.Figure:
    """One balance line over time (a `column` of finance.store.reports.net_worth_by_day) for one currency; `title`
    already in the interface language."""
    data = frame[frame["currency"] == currency]
    fig = go.Figure()
    fig.add_scatter(x=data["day"], y=data[column].astype(float), name=title, line={"color": NET_COLOR})
    _month_axis(fig, data["day"])
    return _layout(fig, f"{title} ({currency})", currency)


def commitments_figure(months: pd.DataFrame, currency: str) -> go.Figure:
    """Future installments per month (columns `month`, `amount`) for one currency."""
    fig = go.Figure()
    fig.add_bar(x=months["month"], y=months["amount"].astype(float), name=_("Installments"),
                marker_color=SPENDING_COLOR)
    _month_axis(fig, months["month"])
    return _layout(fig, _("Future installments ({currency})").format(currency=currency), currency)
