"""Plotly figure builders: data in, figure out. No Streamlit, no SQL."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from finance.cashflow import MIDDLE, CashFlow

INCOME_COLOR = "#2e7d32"
SPENDING_COLOR = "#c62828"
NET_COLOR = "#1565c0"


def _layout(fig: go.Figure, title: str, currency: str) -> go.Figure:
    fig.update_layout(title=title, margin={"l": 10, "r": 10, "t": 50, "b": 10}, height=360,
                      legend={"orientation": "h", "y": -0.15}, yaxis_title=currency, hovermode="x unified")
    return fig


def net_worth_figure(frame: pd.DataFrame, currency: str) -> go.Figure:
    """Net worth, assets and liabilities over time for one currency."""
    data = frame[frame["currency"] == currency]
    fig = go.Figure()
    fig.add_scatter(x=data["day"], y=data["net_worth"].astype(float), name="Net worth", line={"color": NET_COLOR})
    fig.add_scatter(x=data["day"], y=data["assets"].astype(float), name="Assets",
                    line={"color": INCOME_COLOR, "dash": "dot"})
    fig.add_scatter(x=data["day"], y=(-data["liabilities"].astype(float)), name="Liabilities",
                    line={"color": SPENDING_COLOR, "dash": "dot"})
    return _layout(fig, f"Net worth ({currency})", currency)


def cashflow_figure(frame: pd.DataFrame, currency: str) -> go.Figure:
    """Income against spending per month for one currency."""
    data = frame[frame["currency"] == currency]
    fig = go.Figure()
    fig.add_bar(x=data["month"], y=data["income"].astype(float), name="Income", marker_color=INCOME_COLOR)
    fig.add_bar(x=data["month"], y=data["spending"].astype(float), name="Spending", marker_color=SPENDING_COLOR)
    fig.update_layout(barmode="group")
    fig.update_xaxes(dtick="M1", tickformat="%b %Y")
    return _layout(fig, f"Income vs spending per month ({currency})", currency)


def category_figure(frame: pd.DataFrame, currency: str) -> go.Figure:
    """Spending by category, largest at the top, for one currency."""
    data = frame[frame["currency"] == currency].sort_values("spending")
    fig = go.Figure(go.Bar(x=data["spending"].astype(float), y=data["category"], orientation="h",
                           marker_color=SPENDING_COLOR, customdata=data["transactions"],
                           hovertemplate="%{y}: %{x:,.2f} (%{customdata} transactions)<extra></extra>"))
    fig = _layout(fig, f"Spending by category ({currency})", currency)
    fig.update_layout(yaxis_title=None, xaxis_title=currency, height=max(300, 28 * len(data) + 80))
    return fig


def base_net_worth_figure(series: pd.DataFrame, base: str) -> go.Figure:
    """Net worth over time in the base currency: each currency's share converted (dotted) and the total, drawn
    only on days where every currency converted (a gap in the line rather than a face-value sum)."""
    fig = go.Figure()
    fig.add_scatter(x=series["day"], y=series["total"].astype(float), name=f"Net worth in {base}",
                    line={"color": NET_COLOR}, connectgaps=False)
    for code in (c for c in series.columns if c not in ("day", "total")):
        fig.add_scatter(x=series["day"], y=series[code].astype(float), name=f"from {code} accounts",
                        line={"dash": "dot"}, connectgaps=False)
    return _layout(fig, f"Net worth in {base}", base)


def sankey_figure(flow: CashFlow) -> go.Figure:
    """One currency's cash flow as a Sankey: income sources → money in → spending by category and savings. Node
    labels are bank text, HTML-escaped (plotly would render tags such as <a> or <b> in a label)."""
    into = [f for f in flow.flows if f.target == MIDDLE]
    out_of = [f for f in flow.flows if f.source == MIDDLE]
    labels = [*(f.source for f in into), MIDDLE, *(f.target for f in out_of)]
    middle = len(into)
    colors = [INCOME_COLOR] * len(into) + [NET_COLOR] + [
        NET_COLOR if f.kind == "savings" else SPENDING_COLOR for f in out_of]
    ordered = [*into, *out_of]
    links = [(i, middle) for i in range(len(into))] + [(middle, middle + 1 + j) for j in range(len(out_of))]
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": [html.escape(label) for label in labels], "color": colors, "pad": 14, "thickness": 16,
              "hovertemplate": "%{label}: %{value:,.2f}<extra></extra>"},
        link={"source": [s for s, _ in links], "target": [t for _, t in links],
              "value": [float(f.amount) for f in ordered], "customdata": [f.transactions for f in ordered],
              "hovertemplate": "%{source.label} → %{target.label}: %{value:,.2f} (%{customdata} transactions)"
                               "<extra></extra>"}))
    fig.update_layout(title=f"Cash flow ({flow.currency})", margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      height=max(360, 30 * max(len(into), len(out_of)) + 100))
    return fig


def forecast_figure(projection: pd.DataFrame, currency: str) -> go.Figure:
    """Each account's expected balance per day for one currency (account names HTML-escaped: they are bank text)."""
    data = projection[projection["currency"] == currency]
    fig = go.Figure()
    for account_id, rows in data.groupby("account_id", sort=False):
        fig.add_scatter(x=rows["day"], y=rows["balance"].astype(float), name=html.escape(rows["account"].iloc[0]),
                        line={"shape": "hv"}, legendgroup=str(account_id))
    fig.add_hline(y=0, line={"color": SPENDING_COLOR, "dash": "dot", "width": 1})
    return _layout(fig, f"Expected balances ({currency})", currency)


def balance_figure(frame: pd.DataFrame, currency: str, column: str, title: str) -> go.Figure:
    """One balance line over time (a `column` of finance.store.reports.net_worth_by_day) for one currency."""
    data = frame[frame["currency"] == currency]
    fig = go.Figure()
    fig.add_scatter(x=data["day"], y=data[column].astype(float), name=title, line={"color": NET_COLOR})
    return _layout(fig, f"{title} ({currency})", currency)


def commitments_figure(months: pd.DataFrame, currency: str) -> go.Figure:
    """Future installments per month (columns `month`, `amount`) for one currency."""
    fig = go.Figure()
    fig.add_bar(x=months["month"], y=months["amount"].astype(float), name="Installments",
                marker_color=SPENDING_COLOR)
    return _layout(fig, f"Future installments ({currency})", currency)
