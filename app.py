"""Streamlit entry point: `streamlit run app.py` (see the README).

This one file is both the server and the page script:
- `streamlit run app.py` finds `app = st.App(...)` below and serves it. Next to the pages it serves the webhook routes
  (`POST /webhooks/<provider>`), a status route (`GET /api/status`, loopback only), and its
  lifespan runs the background worker (webhook-triggered and scheduled syncs) on the same store as the pages.
- Streamlit then runs this file as the page script (as `__main__`, also under AppTest): sign-in first (no page runs
  for someone not signed in, finance/ui/auth.py), the navigation (Members and Audit for a household's owners), and on
  top of every page the banner for connections that need the user.
"""

import streamlit as st

if __name__ == "__main__":
    from finance.households import Permission
    from finance.i18n import _
    from finance.ui import language
    from finance.ui.alerts import ALERTS_PAGE
    from finance.ui.alerts import nav_title as alerts_nav_title
    from finance.ui.auth import gate
    from finance.ui.banner import render_banner

    language.init()  # before any text: the session's language (browser, stored setting or the `lang` parameter)
    st.set_page_config(page_title=_("Open Finance dashboard"), page_icon="💰", layout="wide")
    member = gate()  # the sign-in page (and nothing else) until the person is signed in and admitted
    connections = st.Page("pages/connections.py", title=_("Connections"), icon="🏦")
    owner_pages = [st.Page("pages/members.py", title=_("Members"), icon="👥"),
                   st.Page("pages/audit.py", title=_("Audit log"), icon="📜")] if member.can(Permission.MANAGE) else []
    navigation = st.navigation([
        st.Page("pages/overview.py", title=_("Overview"), icon="📊", default=True),
        st.Page("pages/transactions.py", title=_("Transactions"), icon="🧾"),
        st.Page("pages/money.py", title=_("Money"), icon="💱"),
        st.Page("pages/recurring.py", title=_("Recurring"), icon="🔁"),
        st.Page("pages/budgets.py", title=_("Budgets"), icon="🎯"),
        st.Page("pages/cash_flow.py", title=_("Cash flow"), icon="🌊"),
        st.Page("pages/forecast.py", title=_("Forecast"), icon="🔮"),
        st.Page("pages/investments.py", title=_("Investments"), icon="📈"),
        st.Page("pages/loans.py", title=_("Loans"), icon="🏠"),
        st.Page("pages/card_bills.py", title=_("Card bills"), icon="💳"),
        st.Page("pages/import_files.py", title=_("Import files"), icon="📥"),
        connections,
        st.Page("pages/sync_status.py", title=_("Sync status"), icon="🔄"),
        st.Page("pages/explore.py", title=_("Explore"), icon="🔎"),
        st.Page(ALERTS_PAGE, title=alerts_nav_title(), icon="🔔"),  # the title carries the unread count
        *owner_pages,
    ])
    language.selector()
    redraw_banner = render_banner(connections)
    navigation.run()
    redraw_banner()  # a reconnect or sync on this page changes the banner at once
else:
    import logging
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    import anyio.to_thread

    from finance import edge, i18n, webhooks, worker
    from finance.config import load_settings
    from finance.private_files import private_process
    from finance.ui.auth import startup_check

    private_process()  # every file the server creates is its owner's only (the store's WAL, snapshots, keys)
    i18n.compile_catalogs()  # the interface catalogs (finance/locale), built from their .po files when newer
    startup_check()  # a loud log line when the app would serve beyond this computer without sign-in

    @asynccontextmanager
    async def lifespan(_app: st.App) -> AsyncIterator[None]:
        """Start the background worker (it opens the store the pages share) and stop it with the server."""
        try:
            await anyio.to_thread.run_sync(worker.start_background)
        except Exception:  # e.g. another process holds the database: the pages say so; the server still starts
            logging.getLogger("finance").exception("background work did not start")
        try:
            yield None
        finally:
            await anyio.to_thread.run_sync(worker.stop_background)

    app = st.App("app.py", routes=[*webhooks.routes(worker.current_receiver), worker.status_route()],
                 middleware=[edge.middleware(load_settings())],  # Host check and Secure cookies (finance.edge)
                 lifespan=lifespan)
