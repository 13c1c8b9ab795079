"""Bank text is shown as text: an institution, account, description, merchant or provider message that looks like
Markdown (bold, a link, an image, HTML) reaches the page escaped, so the browser shows it literally."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.config import load_settings
from finance.services import open_services
from tests.conftest import ok

pytestmark = pytest.mark.engines

APP = str(Path(__file__).resolve().parents[1] / "app.py")
HOSTILE = "**Bank** [click](http://evil.example) ![x](http://evil.example/x.png) <b>hi</b> $x$"


@pytest.fixture
def hostile_store(demo_copy: Path, offline: Path) -> Path:
    """The demo store with bank text replaced by Markdown and HTML everywhere a page shows it."""
    svc = open_services(load_settings())
    try:
        with svc.engine.begin() as conn:
            conn.execute(sa.text("UPDATE connections SET institution_name = :h, status_detail = :h, "
                                 "status = 'needs_reconnect'"), {"h": HOSTILE})
            conn.execute(sa.text("UPDATE accounts SET name = :h"), {"h": HOSTILE})
            conn.execute(sa.text("UPDATE transactions SET description = :h, merchant = :h"), {"h": HOSTILE})
            conn.execute(sa.text("UPDATE sync_runs SET message = :h"), {"h": HOSTILE})
    finally:
        svc.engine.dispose()
    return offline


def shown(at: AppTest) -> list[str]:
    """Every Markdown-rendered text on the page (markdown, captions, callouts)."""
    return [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success")
            for e in getattr(at, kind)]


def assert_literal(texts: list[str]) -> None:
    carrying = [t for t in texts if "Bank" in t and "evil" in t]
    assert carrying, "the hostile text is not on the page at all"
    for text in carrying:
        assert "](http" not in text and "**Bank**" not in text and "<b>" not in text, text


@pytest.mark.parametrize("page", ["pages/connections.py", "pages/sync_status.py"])
def test_institutions_accounts_and_messages_are_shown_literally(hostile_store: Path, page: str):
    at = AppTest.from_file(APP, default_timeout=60)
    ok(at.run())
    at.switch_page(page)
    assert_literal(shown(ok(at.run())))


def test_a_transaction_description_and_merchant_are_shown_literally(hostile_store: Path):
    at = AppTest.from_file(APP, default_timeout=60)
    ok(at.run())
    at.switch_page("pages/transactions.py")
    ok(at.run())
    at.session_state["txn_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    assert_literal(shown(ok(at.run())))
