"""The connect widget: a bidirectional st.components.v2 component and the Python side of its flow.

The browser part (finance/ui/connect_widget/: plain JS, HTML and CSS) draws what finance/connect_flow.py
describes and sends events back. This module performs what those events ask for against the providers
(log in, MFA, mint the hosted widget's token, turn its success into a connection), registers the connection and
runs its first sync with progress. `connect_panel` connects new banks; `reconnect_panel` renews an existing one
in update mode (the hosted widget's, or the offline widget's login again).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path

import streamlit as st

from finance import connect_flow
from finance.connect_flow import Effect, Finish, Flow, Login, MintToken, SendMfa, Step
from finance.errors import ProviderError
from finance.formatting import escape_markdown
from finance.i18n import _
from finance.model import ConnectionState
from finance.providers import registry
from finance.providers.base import ConnectableProvider
from finance.services import Services

ASSETS = Path(__file__).with_name("connect_widget")

_component = st.components.v2.component(
    "finance.connect_widget",
    html=(ASSETS / "widget.html").read_text(encoding="utf-8"),
    css=(ASSETS / "widget.css").read_text(encoding="utf-8"),
    # The shared widget, then each provider's launcher of its hosted widget (they fill the widget's `launchers`).
    js="\n".join([(ASSETS / "widget.js").read_text(encoding="utf-8"),
                   *(kit.hosted_widget.launcher.read_text(encoding="utf-8") for kit in registry.KITS)]),
)

RECONNECT_KEY = "reconnect_widget"


def _capture(key: str) -> None:
    """The widget's event callback: keep the event for the next script run to act on, before anything is drawn."""
    value = st.session_state.get(key)
    event = value.get("event") if isinstance(value, Mapping) else None
    if isinstance(event, Mapping):
        st.session_state[f"{key}:event"] = dict(event)


def mount(flow: Flow, *, key: str) -> None:
    """Draw the widget for this flow; its events arrive through `_capture`."""
    _component(key=key, data=connect_flow.widget_data(flow), on_event_change=partial(_capture, key))


# -- panels ------------------------------------------------------------------------------------------

def _widget(svc: Services, provider_name: str) -> tuple[connect_flow.HostedWidget | None, str | None]:
    """The provider's hosted widget when the app talks to its real service, else the offline widget (None) with
    the sandbox logins that work. A custom base URL (an emulator served over HTTP) gets the offline widget too:
    the hosted widgets only work against the provider's own servers."""
    kit = registry.kit(provider_name)
    if kit.uses_hosted_widget(svc.settings):
        return kit.hosted_widget, None
    return None, kit.sandbox_hint


def connect_panel(svc: Services, provider_name: str) -> Flow | None:
    """The connect widget for one provider: act on its pending event, then draw it.

    Returns the flow when this run finished a connection (its first sync done), for the page to announce.
    """
    key = f"connect_widget_{provider_name}"
    provider = svc.providers[provider_name]
    flow = st.session_state.get(f"{key}:flow")
    if not isinstance(flow, Flow):
        widget, hint = _widget(svc, provider_name)
        flow = connect_flow.start(provider_name, provider.label, widget, hint=hint)
    before = flow.step
    flow = _advance(svc, flow, key)
    if flow.step is Step.CLOSED:
        flow = connect_flow.restart(flow)
    flow = _load(provider, flow)
    st.session_state[f"{key}:flow"] = flow
    mount(flow, key=key)
    return flow if flow.step is Step.DONE and before is not Step.DONE else None


def start_reconnect(svc: Services, connection_id: str, provider_name: str, external_id: str) -> str | None:
    """Open the widget in update mode for a connection; returns an error message when that is not possible."""
    provider = svc.providers.get(provider_name)
    if provider is None:
        return _("The {provider} provider is not available in this app.").format(provider=provider_name)
    widget, hint = _widget(svc, provider_name)
    institution = None
    if widget is None:
        try:
            state = provider.connection_state(external_id)
        except ProviderError as exc:
            return _("{provider} could not find this connection: {message}").format(provider=provider.label,
                                                                                     message=exc.message)
        institution = connect_flow.Choice.of(state.institution) if state.institution else None
    st.session_state[f"{RECONNECT_KEY}:flow"] = connect_flow.start_reconnect(
        provider_name, provider.label, widget, connection_id=connection_id, external_id=external_id,
        institution=institution, hint=hint)
    st.session_state.pop(f"{RECONNECT_KEY}:event", None)
    return None


def reconnecting() -> str | None:
    """The connection id the reconnect widget is open for, if any."""
    flow = st.session_state.get(f"{RECONNECT_KEY}:flow")
    return flow.connection_id if isinstance(flow, Flow) else None


def close_reconnect() -> None:
    st.session_state.pop(f"{RECONNECT_KEY}:flow", None)
    st.session_state.pop(f"{RECONNECT_KEY}:event", None)


def reconnect_panel(svc: Services) -> Flow | None:
    """The widget in update mode, when a reconnect is open: act on its pending event, then draw it.

    Returns the flow when this run finished the reconnect (its re-sync done), for the page to announce.
    """
    flow = st.session_state.get(f"{RECONNECT_KEY}:flow")
    if not isinstance(flow, Flow):
        return None
    provider = svc.providers.get(flow.provider)
    if provider is None:
        close_reconnect()
        return None
    before = flow.step
    flow = _advance(svc, flow, RECONNECT_KEY)
    if flow.step is Step.CLOSED:
        close_reconnect()
        return None
    flow = _load(provider, flow)
    st.session_state[f"{RECONNECT_KEY}:flow"] = flow
    mount(flow, key=RECONNECT_KEY)
    return flow if flow.step is Step.DONE and before is not Step.DONE else None


# -- acting on events ------------------------------------------------------------------------------------

def _advance(svc: Services, flow: Flow, key: str) -> Flow:
    event = st.session_state.pop(f"{key}:event", None)
    if event is None:
        return flow
    flow, effect = connect_flow.handle(flow, event)
    return _perform(svc, flow, effect) if effect is not None else flow


def _load(provider: ConnectableProvider, flow: Flow) -> Flow:
    """Fetch what the current screen shows: the bank list, or the chosen bank's login fields."""
    try:
        if connect_flow.needs_institutions(flow):
            flow = connect_flow.with_institutions(flow, provider.institutions())
        if connect_flow.needs_fields(flow):
            assert flow.institution is not None
            flow = connect_flow.with_fields(flow, provider.credential_fields(flow.institution.id))
    except ProviderError as exc:
        return connect_flow.failed(flow, _("{provider} could not list the banks: {message}").format(
            provider=provider.label, message=exc.message))
    return flow


def _perform(svc: Services, flow: Flow, effect: Effect) -> Flow:
    provider = svc.providers[flow.provider]
    try:
        if isinstance(effect, MintToken):
            return connect_flow.launched(flow, _mint_token(provider, flow))
        state = _login_state(provider, flow, effect)
    except ProviderError as exc:
        return connect_flow.failed(flow, exc.message)
    flow = connect_flow.settled(flow, state)
    if flow.step is Step.SYNCING:
        flow = _first_sync(svc, flow, state)
    return flow


def _mint_token(provider: ConnectableProvider, flow: Flow) -> str:
    """A fresh token for the hosted widget (each open gets its own; they expire within 30 minutes to 4 hours)."""
    return provider.hosted_token(connect_flow.CLIENT_USER_ID, flow.external_id if flow.reconnecting else None)


def _login_state(provider: ConnectableProvider, flow: Flow, effect: Effect) -> ConnectionState:
    """Call the provider for a login, an MFA code or a hosted widget's success; the connection's state after it."""
    if isinstance(effect, Login):
        if not flow.reconnecting:
            state = provider.create_connection(effect.institution_id, effect.credentials)
        else:
            assert flow.external_id is not None  # update mode: new credentials for the existing item
            state = provider.relogin(flow.external_id, effect.credentials)
        return _settle(provider, state.external_id)
    if isinstance(effect, SendMfa):
        provider.submit_mfa(effect.external_id, effect.values)
        return _settle(provider, effect.external_id)
    assert isinstance(effect, Finish)
    if not flow.reconnecting:
        state = provider.complete_hosted(item_id=effect.item_id, public_token=effect.public_token)
        if state is not None:
            return state  # a public token exchanged: the secret to keep comes back in state.secret
    external_id = effect.item_id or flow.external_id
    assert external_id is not None
    return _settle(provider, external_id)


def _settle(provider: ConnectableProvider, external_id: str) -> ConnectionState:
    """Wait for the bank to answer, showing its progress where the widget is (gone once it answered)."""
    slot = st.empty()
    with slot.status(_("Talking to the bank…"), expanded=False) as box:
        state = provider.wait_until_settled(
            external_id, on_progress=lambda step: box.update(label=_("Bank: {step}…").format(
                step=escape_markdown(step.replace("_", " ").lower()))))
    slot.empty()
    return state


def _first_sync(svc: Services, flow: Flow, state: ConnectionState) -> Flow:
    """Register the connection (storing its secret encrypted) and sync it, with a progress bar."""
    connection_id = svc.sync.register(state)
    bar = st.progress(0.0, text=_("First sync…") if not flow.reconnecting else _("Syncing…"))
    result = svc.sync.sync_connection(
        connection_id, trigger="reconnect" if flow.reconnecting else "connect",
        on_progress=lambda stage, fraction: bar.progress(min(max(fraction, 0.0), 1.0), text=stage))
    svc.analytics.refresh()  # the analysts' snapshot holds every synced bank
    bar.empty()
    return connect_flow.synced(flow, ok=result.outcome == "success", message=result.message)

