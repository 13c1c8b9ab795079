"""The offline sandboxes in the pages: which sandbox bank to try first, and the controls of each emulator (advance its
clock, inject faults) at the bottom of Connections."""

from __future__ import annotations

import streamlit as st

from finance.providers import registry
from finance.services import Services
from finance.ui.widgets import flash

FAULT_KINDS = {"server_error": "HTTP 500", "unavailable": "HTTP 503", "rate_limit": "HTTP 429 rate limit",
               "timeout": "Timeout", "malformed_json": "Malformed JSON"}


def first_bank() -> str:
    """The first aggregator's sandbox bank and its login, as Markdown for the empty pages."""
    bank = registry.KITS[0].sandbox_bank
    login = list(bank.credentials.values())
    return f"the sandbox bank **{bank.name}**" + (f" (user `{login[0]}`, password `{login[-1]}`)" if login else "")


def offline(svc: Services) -> bool:
    """Whether any aggregator runs on its offline emulator."""
    return bool(registry.offline_emulators(svc.settings))


def controls(svc: Services, page: str) -> None:
    """An expander per offline emulator: advance its clock, inject a fault into its next requests, clear faults."""
    for name, emulator in registry.offline_emulators(svc.settings).items():
        kit = registry.kit(name)
        with st.expander(f"{kit.label} sandbox controls (offline emulator)"):
            st.caption(f"Sandbox clock: {emulator.clock.now():%Y-%m-%d %H:%M} UTC. Advancing it brings new "
                       "transactions and posts pending ones; sync to see them.")
            days = st.number_input("Days", min_value=1, max_value=60, value=3, key=f"{name}_advance_days")
            if st.button("Advance the clock", key=f"{name}_advance"):
                emulator.advance(days=float(days))
                flash(page, "success", f"Sandbox clock moved {days} days forward. Press Sync now to fetch the "
                                       "changes.")
                st.rerun()
            st.divider()
            kinds = FAULT_KINDS
            kind = st.selectbox("Fault", list(kinds), format_func=kinds.__getitem__, key=f"{name}_fault_kind")
            paths = kit.fault_targets
            path = st.selectbox("On", list(paths), format_func=paths.__getitem__, key=f"{name}_fault_path")
            persistent = st.checkbox("Keep failing until cleared", value=True, key=f"{name}_fault_persistent",
                                     help="Otherwise only the next requests fail; the client retries 5xx, 429 and "
                                          "timeouts up to 4 times, so a short fault is usually absorbed.")
            times = -1 if persistent else int(st.number_input("Fail the next N requests", min_value=1, max_value=50,
                                                              value=2, key=f"{name}_fault_times"))
            if st.button("Inject fault", key=f"{name}_inject"):
                emulator.faults.add(kind, path=path or None, times=times)
                how_long = "until you clear it" if times == -1 else f"for the next {times} requests"
                flash(page, "warning", f"{paths[path]} requests will fail with {kinds[kind]} {how_long}.")
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
