"""Connections: connect a bank (sandbox flow with MFA), sync now with progress, delete."""

import streamlit as st

from finance.formatting import format_when
from finance.model import ConnectionState, ConnectionStatus
from finance.providers.base import ProviderError
from finance.providers.registry import offline_emulators
from finance.store import queries
from finance.sync import SyncResult
from finance.ui.context import services, status_badge

st.title("Connections")
svc = services()


SANDBOX_HINTS = {
    "pluggy": "Offline sandbox: use **Pluggy Bank** with user `user-ok` and password `password-ok` "
              "(`user-ok-mfa` asks for the code `123456`).",
    "plaid": "Offline sandbox: use **First Platypus Bank** with user `user_good` and password `pass_good` "
             "(`user_transactions_dynamic` for lively pending transactions).",
}


FAULT_PATHS = {
    "pluggy": {"/v2/transactions": "Transactions", "/accounts": "Accounts", "/items": "Items", "": "Every request"},
    "plaid": {"/transactions/sync": "Transactions", "/accounts/get": "Accounts", "/item/get": "Items",
              "": "Every request"},
}


def flash(kind: str, text: str) -> None:
    st.session_state["flash"] = (kind, text)


def show_flash() -> None:
    kind, text = st.session_state.pop("flash", (None, None))
    if kind == "success":
        st.success(text, icon="✅")
    elif kind == "error":
        st.error(text, icon="⚠️")
    elif kind == "warning":
        st.warning(text, icon="⚠️")


def run_sync(connection_id: str, trigger: str) -> SyncResult:
    bar = st.progress(0.0, text="Starting sync…")
    result = svc.sync.sync_connection(connection_id, trigger=trigger,
                                      on_progress=lambda stage, f: bar.progress(min(f, 1.0), text=stage))
    bar.empty()
    return result


def settle(provider_name: str, state: ConnectionState) -> None:
    """Wait for the bank, then ask for MFA, or register and run the first sync."""
    provider = svc.providers[provider_name]
    with st.status("Talking to the bank…", expanded=True) as box:
        state = provider.wait_until_settled(
            state.external_id, on_progress=lambda step: box.update(label=f"Bank: {step.replace('_', ' ').lower()}"))
        box.update(label="The bank answered.", state="complete", expanded=False)
    if state.status is ConnectionStatus.NEEDS_INPUT and state.mfa_prompt:
        st.session_state["pending_mfa"] = {"provider": provider_name, "external_id": state.external_id,
                                           "name": state.mfa_prompt.name,
                                           "label": state.mfa_prompt.label,
                                           "instructions": state.mfa_prompt.instructions}
        st.rerun()
    if state.status not in (ConnectionStatus.ACTIVE, ConnectionStatus.CONSENT_EXPIRING):
        flash("error", f"Could not connect: {state.status_detail or state.provider_status}")
        st.rerun()
    connection_id = svc.sync.register(state)
    result = run_sync(connection_id, "connect")
    name = state.institution.name if state.institution else "The bank"
    flash("success" if result.outcome == "success" else "error", f"{name} connected. {result.message}")
    st.rerun()


show_flash()

with svc.engine.connect() as conn:
    status = queries.connections_status(conn)

with st.expander("Connect a bank", expanded=status.empty or "pending_mfa" in st.session_state):
    pending = st.session_state.get("pending_mfa")
    if pending:
        st.write(f"**{pending['label']}** — the bank sent you a code.")
        if pending.get("instructions"):
            st.caption(pending["instructions"])
        with st.form("mfa"):
            code = st.text_input(pending["label"], key="mfa_code")
            send, cancel = st.columns(2)
            submitted = send.form_submit_button("Send code", type="primary")
            cancelled = cancel.form_submit_button("Cancel")
        if cancelled:
            del st.session_state["pending_mfa"]
            st.rerun()
        if submitted:
            if not code.strip():
                st.error("Enter the code the bank sent you.")
            else:
                del st.session_state["pending_mfa"]
                try:
                    provider = svc.providers[pending["provider"]]
                    settle(pending["provider"],
                           provider.submit_mfa(pending["external_id"], {pending["name"]: code.strip()}))
                except ProviderError as exc:
                    flash("error", exc.message)
                    st.rerun()
    else:
        names = list(svc.providers)
        provider_name = st.radio("Provider", names, format_func=lambda n: svc.providers[n].label,
                                 horizontal=True, key="provider")
        provider = svc.providers[provider_name]
        if provider_name in offline_emulators(svc.settings):
            st.caption(SANDBOX_HINTS.get(provider_name, "Offline sandbox."))
        try:
            institutions = provider.institutions()
        except ProviderError as exc:
            st.error(f"Could not load the list of banks: {exc.message}")
            institutions = []
        if institutions:
            labels = {i.id: f"{i.name}{' (sandbox)' if i.is_sandbox else ''}" for i in institutions}
            ordered = sorted(labels, key=lambda i: not labels[i].endswith("(sandbox)"))  # stable: provider order
            institution_id = st.selectbox("Bank", ordered, format_func=labels.__getitem__, key="institution")
            fields = provider.credential_fields(institution_id)
            with st.form("connect"):
                values = {
                    str(f["name"]): st.text_input(str(f.get("label") or f["name"]), key=f"cred_{f['name']}",
                                                  type="password" if f.get("type") == "password" else "default")
                    for f in fields
                }
                submitted = st.form_submit_button("Connect", type="primary")
            if submitted:
                missing = [name for name, value in values.items() if not value]
                if missing:
                    st.error(f"Fill in: {', '.join(missing)}.")
                else:
                    try:
                        settle(provider_name, provider.create_connection(institution_id, values))
                    except ProviderError as exc:
                        flash("error", exc.message)
                        st.rerun()

if status.empty:
    st.info("No connections yet.")

for row in status.itertuples():
    with st.container(border=True):
        info, actions = st.columns([3, 1])
        last = format_when(row.last_success_at)
        info.markdown(f"### {row.institution_name} {status_badge(row.status)}")
        info.caption(f"{row.provider} · {row.accounts} accounts · last successful sync {last}"
                     + format_when(row.consent_expires_at, " · consent until %Y-%m-%d", missing=""))
        if row.last_outcome == "failed":
            info.error(f"Last sync failed: {row.last_message}", icon="⚠️")
        elif row.last_message:
            info.caption(f"Last sync: {row.last_message}")
        if row.status_detail and row.status != ConnectionStatus.ACTIVE.value:
            info.warning(row.status_detail)
        provider = svc.providers.get(row.provider)
        if provider is None:
            info.error(f"The {row.provider} provider is not available in this app.")
            continue
        if actions.button("Sync now", key=f"sync_{row.id}", type="primary"):
            result = run_sync(row.id, "manual")
            flash("success" if result.outcome == "success" else "error",
                  f"{row.institution_name}: {result.message}")
            st.rerun()
        with actions.popover("Delete"):
            st.write("Disconnect this bank? Pluggy will stop syncing it.")
            keep = st.checkbox("Keep its transactions here for reports", value=True, key=f"keep_{row.id}")
            if st.button("Disconnect", key=f"delete_{row.id}", type="primary"):
                try:
                    provider.disconnect(row.external_id)
                except ProviderError as exc:
                    flash("error", f"{provider.label} could not remove the connection: {exc.message}")
                    st.rerun()
                svc.sync.delete_connection(row.id, keep_history=keep)
                flash("success", f"{row.institution_name} disconnected"
                      + ("; its history is kept." if keep else " and its data deleted."))
                st.rerun()

for name, emulator in offline_emulators(svc.settings).items():
    label = svc.providers[name].label
    with st.expander(f"{label} sandbox controls (offline emulator)"):
        st.caption(f"Sandbox clock: {emulator.clock.now():%Y-%m-%d %H:%M} UTC. Advancing it brings new "
                   "transactions and posts pending ones; sync to see them.")
        days = st.number_input("Days", min_value=1, max_value=60, value=3, key=f"{name}_advance_days")
        if st.button("Advance the clock", key=f"{name}_advance"):
            emulator.advance(days=float(days))
            flash("success", f"Sandbox clock moved {days} days forward. Press Sync now to fetch the changes.")
            st.rerun()
        st.divider()
        kinds = {"server_error": "HTTP 500", "unavailable": "HTTP 503", "rate_limit": "HTTP 429 rate limit",
                 "timeout": "Timeout", "malformed_json": "Malformed JSON"}
        kind = st.selectbox("Fault", list(kinds), format_func=kinds.__getitem__, key=f"{name}_fault_kind")
        paths = FAULT_PATHS[name]
        path = st.selectbox("On", list(paths), format_func=paths.__getitem__, key=f"{name}_fault_path")
        persistent = st.checkbox("Keep failing until cleared", value=True, key=f"{name}_fault_persistent",
                                 help="Otherwise only the next requests fail; the client retries 5xx, 429 and "
                                      "timeouts up to 4 times, so a short fault is usually absorbed.")
        times = -1 if persistent else int(st.number_input("Fail the next N requests", min_value=1, max_value=50,
                                                          value=2, key=f"{name}_fault_times"))
        if st.button("Inject fault", key=f"{name}_inject"):
            emulator.faults.add(kind, path=path or None, times=times)
            how_long = "until you clear it" if times == -1 else f"for the next {times} requests"
            flash("warning", f"{paths[path]} requests will fail with {kinds[kind]} {how_long}.")
            st.rerun()
        active = emulator.faults.active()
        if active:
            st.write("Active faults: " + "; ".join(
                f"{kinds.get(f.kind, f.kind)} on {paths.get(f.path or '', f.path)}"
                + (" until cleared" if f.times == -1 else f" ×{max(0, f.after + f.times - f.seen)}")
                for f in active))
            if st.button("Clear faults", key=f"{name}_clear_faults"):
                emulator.faults.clear()
                st.rerun()
