"""Connections: connect a bank through the connect widget; per connection its state, accounts, sync now,
reconnect (update mode) and disconnect; the offline sandbox controls."""

import streamlit as st

from finance.connect_flow import Flow
from finance.demo import DEMO_BANKS, demo_available
from finance.errors import ProviderError
from finance.formatting import escape_markdown, format_money, format_when
from finance.model import ConnectionStatus
from finance.services import SyncResult
from finance.ui import connect_widget, sandbox
from finance.ui.context import services, status_badge
from finance.ui.widgets import flash, show_flash, start_demo

st.title("Connections")
svc = services()

# The "needs you" banner on every page, and the Reconnect buttons below, ask for a reconnect through this key.
RECONNECT_REQUEST = "reconnect_connection_id"
PAGE = "connections"
NEEDS_RECONNECT = {ConnectionStatus.NEEDS_RECONNECT.value, ConnectionStatus.CONSENT_EXPIRING.value,
                   ConnectionStatus.NEEDS_INPUT.value}

def request_reconnect(connection_id: str) -> None:
    st.session_state[RECONNECT_REQUEST] = connection_id


def run_sync(connection_id: str, trigger: str) -> SyncResult:
    bar = st.progress(0.0, text="Starting sync…")
    result = svc.connections.sync(connection_id, trigger=trigger,
                                  on_progress=lambda stage, f: bar.progress(min(f, 1.0), text=stage))
    bar.empty()
    return result


def open_requested_reconnect() -> None:
    """Open the widget in update mode for the connection a Reconnect button (here or in a banner) asked for."""
    wanted = st.session_state.pop(RECONNECT_REQUEST, None)
    if not wanted:
        return
    rows = svc.connections.status()
    match = rows[rows["id"] == wanted]
    if match.empty:
        st.error("That connection no longer exists; connect the bank again below.", icon="⚠️")
        return
    row = match.iloc[0]
    problem = connect_widget.start_reconnect(svc, str(row["id"]), str(row["provider"]), str(row["external_id"]))
    if problem:
        st.error(problem, icon="⚠️")


def announce(finished: Flow | None) -> None:
    """Say how a connect or reconnect that finished in this run went (the widget keeps saying it, too)."""
    if finished is not None and finished.message:
        with notice:
            (st.success if finished.ok else st.warning)(finished.message, icon="✅" if finished.ok else "⚠️")


show_flash(PAGE)
notice = st.container()
open_requested_reconnect()
announce(connect_widget.reconnect_panel(svc))
listing = st.container()  # filled after the connect widget has acted, so a new connection shows at once

st.subheader("Connect a bank")
names = list(svc.providers)
provider_name = st.radio("Provider", names, format_func=lambda n: svc.providers[n].label, horizontal=True,
                         key="provider")
announce(connect_widget.connect_panel(svc, provider_name))

with listing:
    status = svc.connections.status()
    accounts = svc.accounts.summary()
    if status.empty:
        st.info("No banks connected yet. Pick a provider and a bank below"
                + (f": the sandbox banks work offline, e.g. {sandbox.first_bank()}." if sandbox.offline(svc) else "."),
                icon="👋")
        if demo_available(svc):
            if st.button("Try the demo: connect two sandbox banks", type="primary", icon="🚀",
                         key="connections_demo"):
                start_demo(svc, PAGE)
            st.caption("One click connects " + " and ".join(f"**{b.name}**" for b in DEMO_BANKS)
                       + " on the offline sandboxes (Brazil and the US) and syncs them.")

    for row in status.itertuples():
        provider = svc.providers.get(row.provider)
        label = provider.label if provider else row.provider
        with st.container(border=True):
            info, actions = st.columns([3, 1])
            info.markdown(f"### {escape_markdown(str(row.institution_name))} {status_badge(row.status)}")
            info.caption(f"{label}{' sandbox' if row.is_sandbox else ''} · {row.accounts} accounts · last successful "
                         f"sync {format_when(row.last_success_at)}"
                         + format_when(row.consent_expires_at, " · consent until %Y-%m-%d", missing=""))
            if row.last_outcome == "failed":
                info.error(f"Last sync failed: {escape_markdown(str(row.last_message))}", icon="⚠️")
            elif row.last_message:
                info.caption(f"Last sync: {escape_markdown(str(row.last_message))}")
            if row.status_detail and row.status != ConnectionStatus.ACTIVE.value:
                info.warning(escape_markdown(str(row.status_detail)))
            if row.successor_institution_id:
                info.warning("This bank's direct connection is being retired. Connect the bank again through its "
                             "Open Finance connection (above): its accounts then continue this connection's history "
                             "instead of starting over.", icon="🔁")
            for account in accounts[accounts["connection_id"] == row.id].itertuples():
                # an account without a mask (an investment account) reads as NaN from the frame: no "··nan"
                name = f"{account.name}" + (f" ··{account.mask}" if isinstance(account.mask, str) and account.mask
                                            else "")
                info.markdown(f"- {escape_markdown(name)} "
                              f"({str(account.type).replace('_', ' ')}): "
                              f"**{format_money(account.current_balance, account.currency)}**")
            if provider is None:
                info.error(f"The {row.provider} provider is not available in this app.")
                continue
            if actions.button("Sync now", key=f"sync_{row.id}", type="primary"):
                result = run_sync(row.id, "manual")
                flash(PAGE, "success" if result.outcome == "success" else "error",
                      f"{row.institution_name}: {result.message}")
                st.rerun()
            actions.button("Reconnect", key=f"reconnect_{row.id}", on_click=request_reconnect, args=(row.id,),
                           type="primary" if row.status in NEEDS_RECONNECT else "secondary",
                           help="Log in to the bank again (update mode) to renew access, then sync.")
            with actions.popover("Disconnect"):
                st.write(f"Disconnect this bank? {label} will stop syncing it.")
                keep = st.checkbox("Keep its transactions here for reports", value=True, key=f"keep_{row.id}")
                if st.button("Disconnect", key=f"delete_{row.id}", type="primary"):
                    try:
                        provider.disconnect(row.external_id)
                    except ProviderError as exc:
                        flash(PAGE, "error", f"{label} could not remove the connection: {exc.message}")
                        st.rerun()
                    svc.sync.delete_connection(row.id, keep_history=keep)
                    if connect_widget.reconnecting() == row.id:
                        connect_widget.close_reconnect()
                    flash(PAGE, "success", f"{row.institution_name} disconnected"
                          + ("; its history is kept." if keep else " and its data deleted."))
                    st.rerun()

sandbox.controls(svc, PAGE)
