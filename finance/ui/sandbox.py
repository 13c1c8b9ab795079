"""The offline sandboxes in the pages: which sandbox bank to try first, and the controls of each emulator (advance its
clock, inject faults) at the bottom of Connections."""

from __future__ import annotations

import streamlit as st

from finance.i18n import N_, _, format_timestamp, ngettext
from finance.providers import registry
from finance.services import Services
from finance.ui.widgets import flash

FAULT_KINDS = {"server_error": N_("HTTP 500"), "unavailable": N_("HTTP 503"), "rate_limit": N_("HTTP 429 rate limit"),
               "timeout": N_("Timeout"), "malformed_json": N_("Malformed JSON")}


def first_bank() -> str:
    """The first aggregator's sandbox bank and its login, as Markdown for the empty pages."""
    bank = registry.KITS[0].sandbox_bank
    login = list(bank.credentials.values())
    if login:
        return _("the sandbox bank **{bank}** (user `{user}`, password `{password}`)").format(
            bank=bank.name, user=login[0], password=login[-1])
    return _("the sandbox bank **{bank}**").format(bank=bank.name)


def offline(svc: Services) -> bool:
    """Whether any aggregator runs on its offline emulator."""
    return bool(registry.offline_emulators(svc.settings))


def controls(svc: Services, page: str) -> None:
    """An expander per offline emulator: advance its clock, inject a fault into its next requests, clear faults."""
    for name, emulator in registry.offline_emulators(svc.settings).items():
        kit = registry.kit(name)
        with st.expander(_("{provider} sandbox controls (offline emulator)").format(provider=kit.label)):
            st.caption(_("Sandbox clock: {when} UTC. Advancing it brings new transactions and posts pending ones; "
                         "sync to see them.").format(when=format_timestamp(emulator.clock.now())))
            days = st.number_input(_("Days"), min_value=1, max_value=60, value=3, key=f"{name}_advance_days")
            if st.button(_("Advance the clock"), key=f"{name}_advance"):
                emulator.advance(days=float(days))
                flash(page, "success", ngettext(
                    "Sandbox clock moved {count} day forward. Press Sync now to fetch the changes.",
                    "Sandbox clock moved {count} days forward. Press Sync now to fetch the changes.", days).format(
                    count=days))
                st.rerun()
            st.divider()
            kinds = FAULT_KINDS
            kind = st.selectbox(_("Fault"), list(kinds), format_func=lambda k, kinds=kinds: str(kinds[k]),
                                key=f"{name}_fault_kind")
            paths = kit.fault_targets
            path = st.selectbox(_("On"), list(paths), format_func=lambda p, paths=paths: str(paths[p]),
                                key=f"{name}_fault_path")
            persistent = st.checkbox(_("Keep failing until cleared"), value=True, key=f"{name}_fault_persistent",
                                     help=_("Otherwise only the next requests fail; the client retries 5xx, 429 and "
                                            "timeouts up to 4 times, so a short fault is usually absorbed."))
            times = -1 if persistent else int(st.number_input(_("Fail the next N requests"), min_value=1,
                                                              max_value=50, value=2, key=f"{name}_fault_times"))
            if st.button(_("Inject fault"), key=f"{name}_inject"):
                emulator.faults.add(kind, path=path or None, times=times)
                message = _("{target} requests will fail with {fault} until you clear it.") if times == -1 else \
                    ngettext("{target} requests will fail with {fault} for the next {count} request.",
                             "{target} requests will fail with {fault} for the next {count} requests.", times)
                flash(page, "warning", message.format(target=paths[path], fault=kinds[kind], count=times))
                st.rerun()
            active = emulator.faults.active()
            if active:
                st.write(_("Active faults: {faults}").format(faults="; ".join(
                    _("{fault} on {target}").format(fault=kinds.get(f.kind, f.kind),
                                                    target=paths.get(f.path or "", f.path))
                    + (" " + _("until cleared") if f.times == -1 else f" ×{max(0, f.after + f.times - f.seen)}")
                    for f in active)))
                if st.button(_("Clear faults"), key=f"{name}_clear_faults"):
                    emulator.faults.clear()
                    st.rerun()
