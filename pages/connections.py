"""Connections: connect a bank through the connect widget; per connection its state, accounts, sync now,
reconnect (update mode) and disconnect; the offline sandbox controls."""

import streamlit as st

from finance.connect_flow import Flow
from finance.demo import DEMO_BANKS, demo_available
from finance.errors import ProviderError
from finance.formatting import escape_markdown, format_money
from finance.households import Permission
from finance.i18n import _, format_short_day, format_timestamp, ngettext
from finance.model import ConnectionStatus
from finance.money import account_type_label
from finance.services import SyncResult
from finance.ui import connect_widget, sandbox
from finance.ui.auth import can, editor, record
from finance.ui.context import services, status_badge
from finance.ui.widgets import flash, show_flash, start_demo

st.title(_("Connections"))
svc = services()

# The "needs you" banner on every page, and the Reconnect buttons below, ask for a reconnect through this key.
RECONNECT_REQUEST = "reconnect_connection_id"
PAGE = "connections"
NEEDS_RECONNECT = {ConnectionStatus.NEEDS_RECONNECT.value, ConnectionStatus.CONSENT_EXPIRING.value,
                   ConnectionStatus.NEEDS_INPUT.value}

may_connect = can(Permission.CONNECT)  # a viewer sees the connections, not the controls (and every action refuses)


def request_reconnect(connection_id: str) -> None:
    editor(Permission.CONNECT)
    st.session_state[RECONNECT_REQUEST] = connection_id


def run_sync(connection_id: str, trigger: str) -> SyncResult:
    editor(Permission.CONNECT)
    bar = st.progress(0.0, text=_("Starting sync…"))
    result = svc.connections.sync(connection_id, trigger=trigger,
                                  on_progress=lambda stage, f: bar.progress(min(f, 1.0), text=stage))
    bar.empty()
    return result


def open_requested_reconnect() -> None:
    """Open the widget in update mode for the connection a Reconnect button (here or in a banner) asked for."""
    wanted = st.session_state.pop(RECONNECT_REQUEST, None)
    if not wanted or not may_connect:
        return
    rows = svc.connections.status()
    match = rows[rows["id"] == wanted]
    if match.empty:
        st.error(_("That connection no longer exists; connect the bank again below."), icon="⚠️")
        return
    row = match.iloc[0]
    problem = connect_widget.start_reconnect(svc, str(row["id"]), str(row["provider"]), str(row["external_id"]))
    if problem:
        st.error(escape_markdown(problem), icon="⚠️")


def announce(finished: Flow | None) -> None:
    """Say how a connect or reconnect that finished in this run went (the widget keeps saying it, too)."""
    if finished is not None and finished.ok:
        record(finished.mode, finished.connection_id or "", {
            "provider": finished.provider, "institution": finished.institution.name if finished.institution else None})
    if finished is not None and finished.message:
        with notice:
            (st.success if finished.ok else st.warning)(escape_markdown(finished.message),
                                                        icon="✅" if finished.ok else "⚠️")


show_flash(PAGE)
notice = st.container()
open_requested_reconnect()
if may_connect:
    announce(connect_widget.reconnect_panel(svc))
listing = st.container()  # filled after the connect widget has acted, so a new connection shows at once

if may_connect:
    st.subheader(_("Connect a bank"))
    names = list(svc.providers)
    provider_name = st.radio(_("Provider"), names, format_func=lambda n: svc.providers[n].label, horizontal=True,
                             key="provider")
    announce(connect_widget.connect_panel(svc, provider_name))
else:
    st.caption(_("You can see this household's connections; connecting, syncing and disconnecting banks is for "
                 "its owners and members."))

with listing:
    status = svc.connections.status()
    accounts = svc.accounts.summary()
    if status.empty:
        st.info(_("No banks connected yet. Pick a provider and a bank below: the sandbox banks work offline, e.g. "
                  "{bank}.").format(bank=sandbox.first_bank()) if sandbox.offline(svc) else
                _("No banks connected yet. Pick a provider and a bank below."), icon="👋")
        if demo_available(svc) and may_connect:
            if st.button(_("Try the demo: connect two sandbox banks"), type="primary", icon="🚀",
                         key="connections_demo"):
                start_demo(svc, PAGE)
            st.caption(_("One click connects {banks} on the offline sandboxes (Brazil and the US) and syncs them.")
                       .format(banks=_(" and ").join(f"**{b.name}**" for b in DEMO_BANKS)))

    for row in status.itertuples():
        provider = svc.providers.get(row.provider)
        label = provider.label if provider else row.provider
        with st.container(border=True):
            info, actions = st.columns([3, 1])
            info.markdown(f"### {escape_markdown(str(row.institution_name))} {status_badge(row.status)}")
            consent = " · " + _("consent until {day}").format(day=format_short_day(row.consent_expires_at)) \
                if row.consent_expires_at == row.consent_expires_at and row.consent_expires_at is not None else ""
            info.caption((_("{provider} sandbox").format(provider=label) if row.is_sandbox else label) + " · " +
                         ngettext("{count} account", "{count} accounts", row.accounts).format(count=row.accounts) +
                         " · " + _("last successful sync {when}").format(when=format_timestamp(row.last_success_at))
                         + consent)
            if row.last_outcome == "failed":
                info.error(_("Last sync failed: {message}").format(message=escape_markdown(str(row.last_message))),
                           icon="⚠️")
            elif row.last_message:
                info.caption(_("Last sync: {message}").format(message=escape_markdown(str(row.last_message))))
            if row.status_detail and row.status != ConnectionStatus.ACTIVE.value:
                info.warning(escape_markdown(str(row.status_detail)))
            if row.successor_institution_id:
                info.warning(_("This bank's direct connection is being retired. Connect the bank again through its "
                               "Open Finance connection (above): its accounts then continue this connection's "
                               "history instead of starting over."), icon="🔁")
            for account in accounts[accounts["connection_id"] == row.id].itertuples():
                # an account without a mask (an investment account) reads as NaN from the frame: no "··nan"
                name = f"{account.name}" + (f" ··{account.mask}" if isinstance(account.mask, str) and account.mask
                                            else "")
                info.markdown(f"- {escape_markdown(name)} ({account_type_label(str(account.type)).lower()}): "
                              f"**{format_money(account.current_balance, account.currency)}**")
            if provider is None:
                info.error(_("The {provider} provider is not available in this app.").format(provider=row.provider))
                continue
            if not may_connect:
                continue
            if actions.button(_("Sync now"), key=f"sync_{row.id}", type="primary"):
                result = run_sync(row.id, "manual")
                flash(PAGE, "success" if result.outcome == "success" else "error",
                      f"{row.institution_name}: {result.message}")
                st.rerun()
            actions.button(_("Reconnect"), key=f"reconnect_{row.id}", on_click=request_reconnect, args=(row.id,),
                           type="primary" if row.status in NEEDS_RECONNECT else "secondary",
                           help=_("Log in to the bank again (update mode) to renew access, then sync."))
            with actions.popover(_("Disconnect")):
                st.write(_("Disconnect this bank? {provider} will stop syncing it.").format(provider=label))
                keep = st.checkbox(_("Keep its transactions here for reports"), value=True, key=f"keep_{row.id}")
                if st.button(_("Disconnect"), key=f"delete_{row.id}", type="primary"):
                    editor(Permission.CONNECT)
                    try:
                        provider.disconnect(row.external_id)
                    except ProviderError as exc:
                        flash(PAGE, "error", _("{provider} could not remove the connection: {message}").format(
                            provider=label, message=exc.message))
                        st.rerun()
                    svc.sync.delete_connection(row.id, keep_history=keep)
                    record("disconnect", row.id, {"provider": row.provider, "institution": row.institution_name,
                                                  "keep_history": keep})
                    if connect_widget.reconnecting() == row.id:
                        connect_widget.close_reconnect()
                    flash(PAGE, "success", (_("{institution} disconnected; its history is kept.") if keep else
                                            _("{institution} disconnected and its data deleted.")).format(
                        institution=row.institution_name))
                    st.rerun()

if may_connect:
    sandbox.controls(svc, PAGE)
