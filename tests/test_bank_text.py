"""Bank text is data, never markup: descriptions, merchants, notes, account, institution, security, loan and
category names and providers' messages that carry Markdown, HTML, LaTeX, Streamlit's colour and icon directives,
web and e-mail addresses and plotly template fields reach every page literally — escaped wherever Streamlit renders
Markdown (text, captions, alerts, labels, help, metric values, radio options, expanders, tabs, progress), raw where
it does not (tables, select options, st.text), and HTML-escaped in every plotly title, label, legend and hover."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.budgets import add_months, first_of_month
from finance.config import load_settings
from finance.formatting import WORD_JOINER, escape_markdown, escape_plot_text
from finance.services import open_services, shared_services
from tests.conftest import ok

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["overview", "transactions", "money", "recurring", "budgets", "cash_flow", "forecast", "investments", "loans",
         "card_bills", "import_files", "connections", "sync_status", "explore", "alerts"]

ATTACKS = ["[click](https://evil.example/a)", "![x](https://evil.example/i.png)", "<img src=x onerror=alert(1)>",
           "**bold**", "_em_", "~~gone~~", "`code`", ":red[x]", ":blue-badge[y]", ":material/home:", ":smile:",
           "$x^2$", "<b>x</b>", "<a href='https://evil.example/b'>y</a>", "%{customdata}", "https://evil.example/c",
           "www.evil.example", "me@evil.example", "&lt;i&gt;", "# heading", "> quote", "- item", "| a | b |"]
HOSTILE = " ".join(ATTACKS)
"""What a bank (or an attacker who can name a transfer) could put in any text it sends."""

MARKUP_LEFT = re.compile(r"https?:/|www\.|\w@\w|:[\w-]+(?:/[\w-]+)?:|:[\w-]+\[")
"""What Streamlit acts on in the text Markdown leaves (escapes already resolved): web and e-mail addresses it turns
into links, `:icon:` / `:material/…:` shortcodes, `:color[…]` directives."""


def shown(text: str) -> str:
    """What a Markdown renderer keeps of `text` after resolving backslash escapes (CommonMark: any ASCII
    punctuation), which is what Streamlit's link, icon and colour finders then read."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def test_markdown_escape_leaves_markdown_nothing_to_act_on():
    for attack in [*ATTACKS, HOSTILE, "a\n===", "    code block", "line\n\n# heading", "back\\slash"]:
        escaped = escape_markdown(attack)
        assert re.search(r"[!-/:-@\[-`{-~]", re.sub(r"\\[!-/:-@\[-`{-~]", "", escaped)) is None, escaped
        assert "\n" not in escaped and not escaped.startswith(" "), escaped
        assert MARKUP_LEFT.search(shown(escaped)) is None, escaped
        assert shown(escaped).replace(WORD_JOINER, "") == " ".join(attack.split())  # the reader sees the text


def test_plot_escape_leaves_plotly_no_tag_or_entity():
    for attack in [*ATTACKS, HOSTILE]:
        escaped = escape_plot_text(attack)
        assert "<" not in escaped and ">" not in escaped, escaped
        assert re.search(r"&(?!amp;|lt;|gt;)", escaped) is None, escaped
        assert escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == attack


# ---- Every page on a store whose bank text is hostile --------------------------------------------------------------

BANK_TEXT = {
    # table: {column: what the bank's text there starts with}
    "connections": {"institution_name": "Institution", "status_detail": "Detail"},
    "accounts": {"name": "Account"},
    "transactions": {"description": "Description", "merchant": "Merchant", "note": "Note"},
    "categories": {"name": "Category"},
    "sync_runs": {"message": "Message"},
    "securities": {"name": "Security"},
    "liabilities": {"name": "Loan"},
    "investment_transactions": {"description": "Trade"},
    "portfolio_status": {"message": "Problem"},
}


BUDGET_MONTHS = [add_months(first_of_month(date.today()), -n) for n in range(12)]


def hostile(label: str) -> str:
    return f"{label} {HOSTILE}"


@pytest.fixture
def hostile_store(demo_copy: Path, offline: Path) -> Path:
    """The demo store with every bank text replaced by a label and the hostile text (connections needing a
    reconnect, failed portfolio reads and a failed sync, so their details and messages show), a merchant rule and
    an exceeded budget."""
    svc = open_services(load_settings())
    try:
        with svc.engine.begin() as conn:
            for table, columns in BANK_TEXT.items():
                assignments = ", ".join(f"{column} = :{column}" for column in columns)
                conn.execute(sa.text(f"UPDATE {table} SET {assignments}"),  # the names are constants
                             {column: hostile(label) for column, label in columns.items()})
            conn.execute(sa.text("UPDATE connections SET status = 'needs_reconnect'"))
            conn.execute(sa.text("UPDATE portfolio_status SET ok = FALSE"))
            conn.execute(sa.text("UPDATE sync_runs SET outcome = 'failed' WHERE id IN "
                                 "(SELECT id FROM sync_runs ORDER BY started_at DESC LIMIT 1)"))
            picked = conn.execute(sa.text("SELECT id FROM transactions WHERE amount < 0 AND currency = 'BRL' "
                                          "ORDER BY booked_date DESC LIMIT 1")).scalar_one()
        svc.transactions.set_category(picked, "food.groceries", as_rule=True, actor="test")
        for month in BUDGET_MONTHS:
            svc.budgets.set(month, "food", "BRL", Decimal("0.01"), actor="test")
    finally:
        svc.engine.dispose()
    return offline


def nodes(node: object) -> Iterator[object]:
    yield node
    children = getattr(node, "children", None)
    for child in children.values() if isinstance(children, dict) else []:
        yield from nodes(child)


def strings(message: object) -> Iterator[tuple[str, str]]:
    """(field name, value) of every string in a protobuf message, nested messages and lists included."""
    for field, value in message.ListFields():  # type: ignore[attr-defined]
        values = value if field.is_repeated else [value]
        for item in values:
            if isinstance(item, str):
                yield field.name, item
            elif hasattr(item, "ListFields"):
                yield from strings(item)


PLAIN = {"text", "code", "text_input", "text_area", "json"}
"""Elements whose text Streamlit shows as it is."""
PLAIN_OPTIONS = {"selectbox", "multiselect"}
"""Widgets whose options Streamlit shows as they are (their label and help are Markdown)."""


def collect(at: AppTest) -> tuple[list[str], list[str], list[dict]]:
    """What the page shows: (Markdown-rendered texts, texts shown as they are, plotly figures)."""
    markdown, plain, figures = [], [], []
    for node in nodes(at._tree):
        proto, kind = getattr(node, "proto", None), getattr(node, "type", "")
        if kind == "dataframe" or kind == "arrow_data_frame":
            frame = node.value  # type: ignore[attr-defined]
            plain += [str(c) for c in frame.columns] + [str(v) for v in frame.astype(str).to_numpy().ravel()]
            continue
        if proto is None or not hasattr(proto, "ListFields"):
            continue
        if kind == "plotly_chart":
            figures.append(json.loads(proto.spec))
            continue
        for field, value in strings(proto):
            if field in ("id", "form_id", "key", "icon", "type", "width_config", "spec", "config", "theme"):
                continue
            if kind in PLAIN or (kind in PLAIN_OPTIONS and field in ("options", "default", "value")):
                plain.append(value)
            elif field in ("body", "label", "help", "delta", "text", "options", "placeholder", "caption"):
                markdown.append(value)
    return markdown, plain, figures


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    ok(at.run())
    if page != "overview":
        at.switch_page(f"pages/{page}.py")
        ok(at.run())
    return at


def pick_first_flow(at: AppTest) -> None:
    at.selectbox(key="cash_flow_link").select_index(0)


def open_first_series(at: AppTest) -> None:
    at.selectbox(key="recurring_series").set_value(shared_services(load_settings()).recurring.series(date.today())[0].key)


def open_budget_month(at: AppTest) -> None:
    """The newest month whose budget was exceeded: the page names its category."""
    budgets = shared_services(load_settings()).budgets
    at.selectbox(key="budgets_month").set_value(next(
        month for month in BUDGET_MONTHS if any(line.over for line in budgets.month_view(month, include_pending=True))))


def select_first_transaction(at: AppTest) -> None:
    at.session_state["txn_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}


def sync_now(at: AppTest) -> None:
    """Press the first connection's Sync now: its outcome is said with the institution's name."""
    next(b for b in at.button if (b.key or "").startswith("sync_")).click()


def query_descriptions(at: AppTest) -> None:
    at.text_area(key="explore_sql").input("SELECT description, merchant FROM transactions LIMIT 5")
    at.button(key="explore_run").click()


ACTIONS: dict[str, Callable[[AppTest], None]] = {
    "transactions": select_first_transaction, "budgets": open_budget_month, "recurring": open_first_series,
    "cash_flow": pick_first_flow,
    "connections": sync_now, "explore": query_descriptions,
}
"""What a user does on a page to see more of the bank's text than it first shows."""

EXPECTED: dict[str, tuple[set[str], set[str], set[str]]] = {
    # page: (where Markdown is rendered, where text is shown as it is, in charts): the bank texts each must show
    "overview": ({"Institution", "Detail", "Message", "Description"}, {"Account", "Institution", "Merchant"},
                 {"Category"}),
    "transactions": ({"Description", "Merchant", "Account", "Institution", "Category"},
                     {"Description", "Merchant", "Note", "Account", "Category"}, set()),
    "money": (set(), {"Account", "Institution"}, set()),
    "recurring": (set(), {"Merchant"}, set()),
    "budgets": ({"Category"}, {"Category"}, set()),
    "cash_flow": (set(), {"Category", "Description"}, {"Category"}),
    "forecast": ({"Account"}, {"Account"}, {"Account"}),
    "investments": ({"Institution", "Problem"}, {"Account", "Security", "Trade"}, set()),
    "loans": ({"Institution", "Problem"}, {"Account", "Institution", "Loan"}, set()),
    "card_bills": ({"Account", "Institution", "Problem"}, set(), set()),
    "import_files": (set(), {"Account", "Institution"}, set()),
    "connections": ({"Institution", "Detail", "Message", "Account"}, set(), set()),
    "sync_status": ({"Institution", "Detail", "Message"}, {"Institution", "Message"}, {"Institution", "Message"}),
    "explore": (set(), {"Description", "Merchant"}, set()),
    "alerts": (set(), {"Description", "Merchant", "Institution"}, set()),
}

TEMPLATES = ("hovertemplate", "texttemplate")


def figure_texts(figure: object, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, text) of every string in a plotly figure's JSON."""
    if isinstance(figure, dict):
        for name, value in figure.items():
            yield from figure_texts(value, name)
    elif isinstance(figure, list):
        for value in figure:
            yield from figure_texts(value, key)
    elif isinstance(figure, str):
        yield key, figure


def bank_labels(texts: list[str]) -> set[str]:
    """Which bank texts (by their label) are among `texts`."""
    return {label for text in texts for label in re.findall(r"(\w+)\W{0,3}\[click", text)}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_bank_text_literally(hostile_store: Path, page: str):
    at = run_page(page)
    if page in ACTIONS:
        ACTIONS[page](at)
        ok(at.run())
    markdown, plain, figures = collect(at)
    literal = escape_markdown(HOSTILE)
    for text in markdown:  # each bank text escaped as a whole, and nothing of it outside that
        assert "evil" not in text.replace(literal, ""), f"bank text rendered as Markdown: {text!r}"
    for text in plain:  # as the bank sent it: no backslash shown
        assert "evil" not in text.replace(HOSTILE, ""), f"bank text shown changed: {text!r}"
    charted = []
    for figure in figures:
        for key, text in figure_texts(figure):
            if "evil" not in text:
                continue
            assert key not in TEMPLATES, f"bank text in a plotly {key}: {text!r}"
            assert "<" not in text and ">" not in text and re.search(r"&(?!amp;|lt;|gt;|quot;|#x27;)", text) is None, \
                f"bank text in a chart's {key} that plotly renders as HTML: {text!r}"
            charted.append(text)
    wanted_markdown, wanted_plain, wanted_charted = EXPECTED[page]
    assert wanted_markdown <= bank_labels(markdown), "the page does not show this bank text at all"
    assert wanted_plain <= bank_labels(plain), "the page does not show this bank text at all"
    assert wanted_charted <= bank_labels([shown(t) for t in charted]), "the charts do not show this bank text at all"
