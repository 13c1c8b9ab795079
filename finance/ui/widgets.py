"""Small Streamlit pieces several pages share: the one-shot message after a rerun, who is editing, the period
picker, and the one-click sandbox demo. One definition each, so pages behave alike."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from finance import money
from finance.demo import DemoUnavailable, run_demo
from finance.formatting import escape_markdown, format_money
from finance.i18n import _, format_period
from finance.services import Services
from finance.ui.auth import current_member

FLASH_KINDS = {"success": (st.success, "✅"), "error": (st.error, "⚠️"), "warning": (st.warning, "⚠️")}


def flash(page: str, kind: str, text: str) -> None:
    """Keep a message for the page's next run (a callback or st.rerun would otherwise lose it). `text` is plain
    text, never Markdown: it is shown literally."""
    st.session_state[f"{page}_flash"] = (kind, text)


def show_flash(page: str) -> None:
    """Show, once, the message `flash` kept for this page, literally: messages carry bank text (an institution, a
    merchant, a provider's error)."""
    kind, text = st.session_state.pop(f"{page}_flash", (None, None))
    if kind in FLASH_KINDS:
        show, icon = FLASH_KINDS[kind]
        show(escape_markdown(text), icon=icon)


def actor() -> str:
    """Who is using the app, for the audit log and their own preferences: the signed-in member's e-mail, or "user"
    without sign-in. Actions that change the household's data ask `finance.ui.auth.editor` instead."""
    return current_member().email


def period_picker(key: str, first_day: date | None, last_day: date | None) -> tuple[date, date, bool]:
    """A preset period (or custom dates) and the pending toggle; returns (start, end, include_pending)."""
    today = date.today()
    controls = st.columns([1.3, 2, 1.2], vertical_alignment="bottom")
    preset = controls[0].selectbox(_("Period"), money.PERIODS, index=money.PERIODS.index("Last 12 months"),
                                   key=f"{key}_preset", format_func=_)
    if preset == "Custom":
        default = money.preset_period("Last 12 months", today)
        period = controls[1].date_input(_("From – to"), value=(max(first_day or today, default[0]), last_day or today),
                                        key=key, format=_("YYYY-MM-DD"))
        start, end = period if isinstance(period, tuple) and len(period) == 2 else default
    else:
        start, end = money.preset_period(preset, today)
        controls[1].markdown(format_period(start, end))
    include_pending = controls[2].toggle(_("Include pending"), value=True, key=f"{key}_pending")
    return start, end, include_pending


def date_column() -> dict[str, object]:
    """The column_config that shows a table's Date column as a date in the interface language's order."""
    return {_("Date"): st.column_config.DateColumn(_("Date"), format=_("YYYY-MM-DD"))}


def status_text(status: str) -> str:
    """"⏳ Pending" or "Posted" for a transaction's status."""
    return "⏳ " + _("Pending") if status == "pending" else _("Posted")


def transaction_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Transactions as the drill-down tables show them (date, description, merchant, amount, category, status,
    account): money in each row's currency, categories in the interface language."""
    return pd.DataFrame({
        _("Date"): rows["booked_date"], _("Description"): rows["description"],
        _("Merchant"): rows["merchant"].fillna(""),
        _("Amount"): [format_money(a, c) for a, c in zip(rows["amount"], rows["currency"], strict=True)],
        _("Category"): [_(name) if isinstance(name, str) else cid for name, cid in zip(
            rows["category_name"], rows["category"] if "category" in rows else rows["category_name"], strict=True)],
        _("Status"): [status_text(s) for s in rows["status"]],
        _("Account"): rows["account_name"]})


def start_demo(svc: Services, page: str) -> None:
    """Connect and sync the two sandbox banks with a progress bar, then rerun the page to show the result."""
    bar = st.progress(0.0, text=_("Starting the demo…"))
    try:
        results = run_demo(svc, lambda label, fraction: bar.progress(fraction, text=label))
    except DemoUnavailable as exc:
        flash(page, "error", str(exc))
        st.rerun()
    failed = any(r.outcome == "failed" for r in results)
    flash(page, "error" if failed else "success", " ".join(r.message for r in results))
    st.rerun()
