"""The one-click sandbox demo, and the connect sequence it shares with `python -m finance connect`.

`connect_bank` is how a bank is connected without a browser: create the item, wait for the bank, answer MFA
when it asks, until the connection settles. `run_demo` uses it to connect each aggregator's sandbox bank on the
offline emulators, registers them and runs their first sync. It is safe to press twice: a sandbox bank that is
already connected is reported as such, never connected again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from finance.errors import ProviderError
from finance.i18n import _
from finance.model import ConnectionState, ConnectionStatus, MfaPrompt
from finance.providers import registry
from finance.providers.base import ConnectableProvider
from finance.services import Services
from finance.store import connections
from finance.store.ingest import ApplyCounts
from finance.sync import SyncResult

CONNECTED = (ConnectionStatus.ACTIVE, ConnectionStatus.CONSENT_EXPIRING)
Progress = Callable[[str, float], None]


class ConnectFailed(ProviderError):
    """The bank answered, but the connection did not become usable (wrong password, bank down, MFA refused)."""


class DemoUnavailable(RuntimeError):
    """The demo needs both providers on their offline emulators."""


@dataclass(frozen=True, slots=True)
class DemoBank:
    """One sandbox bank the demo connects."""

    provider: str
    institution_id: str
    name: str
    credentials: Mapping[str, str] = field(default_factory=dict)


DEMO_BANKS = tuple(DemoBank(kit.name, kit.sandbox_bank.institution_id, kit.sandbox_bank.name,
                            kit.sandbox_bank.credentials) for kit in registry.KITS)
"""One sandbox bank per aggregator."""


def connect_bank(provider: ConnectableProvider, institution_id: str, credentials: Mapping[str, str], *,
                 ask_mfa: Callable[[MfaPrompt], str] | None = None,
                 on_progress: Callable[[str], None] | None = None, interval: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> ConnectionState:
    """Create the connection and see it through the bank's steps (MFA answered by `ask_mfa`); returns the
    connected state, ready for `SyncEngine.register`. Raises ConnectFailed (with the bank's reason) otherwise."""
    state = provider.create_connection(institution_id, dict(credentials))
    while True:
        state = provider.wait_until_settled(state.external_id, on_progress=on_progress, interval=interval,
                                            sleep=sleep)
        if state.status is ConnectionStatus.NEEDS_INPUT and state.mfa_prompt and ask_mfa is not None:
            state = provider.submit_mfa(state.external_id, {state.mfa_prompt.name: ask_mfa(state.mfa_prompt)})
            continue
        break
    if state.status not in CONNECTED:
        reason = state.status_detail or state.error_message or state.provider_status
        raise ConnectFailed(_("Could not connect: {detail}").format(detail=reason), code=state.error_code,
                            provider=state.provider)
    return state


def demo_available(svc: Services) -> bool:
    """True when every provider the demo uses runs on its offline emulator (no credentials set)."""
    offline = registry.offline_emulators(svc.settings)
    return all(bank.provider in offline and bank.provider in svc.providers for bank in DEMO_BANKS)


def _existing(svc: Services, bank: DemoBank) -> str | None:
    """The id of a live sandbox connection to `bank`, if one exists."""
    with svc.engine.connect() as conn:
        status = connections.connections_status(conn)
    same = status[(status["provider"] == bank.provider) & (status["institution_id"] == bank.institution_id)
                  & status["is_sandbox"].astype(bool) & (status["status"] != ConnectionStatus.REVOKED.value)]
    return None if same.empty else str(same.iloc[0]["id"])


def run_demo(svc: Services, on_progress: Progress | None = None, *, interval: float = 0.25) -> list[SyncResult]:
    """Connect and sync the demo's sandbox banks, one after the other; `on_progress(label, fraction)` follows
    along. A bank already connected is skipped (outcome `skipped`); a bank that fails does not stop the other."""
    if not demo_available(svc):
        raise DemoUnavailable(_("The demo connects the offline sandbox banks, but a provider has real credentials "
                                "set. Connect your banks on the Connections page instead."))
    report = on_progress or (lambda _label, _fraction: None)
    results: list[SyncResult] = []
    for index, bank in enumerate(DEMO_BANKS):
        def scoped(label: str, fraction: float, i: int = index) -> None:
            report(label, min(1.0, (i + fraction) / len(DEMO_BANKS)))

        existing = _existing(svc, bank)
        if existing is not None:
            scoped(_("{bank} is already connected").format(bank=bank.name), 1.0)
            results.append(SyncResult(existing, None, "skipped", ApplyCounts(),
                                      _("{bank} is already connected (sandbox): nothing to do.").format(
                                          bank=bank.name)))
            continue
        scoped(_("Connecting {bank}…").format(bank=bank.name), 0.0)
        try:
            state = connect_bank(svc.providers[bank.provider], bank.institution_id, bank.credentials,
                                 on_progress=lambda step, name=bank.name: scoped(
                                     f"{name}: {step.replace('_', ' ').lower()}", 0.1),
                                 interval=interval)
        except ProviderError as exc:
            results.append(SyncResult("", None, "failed", ApplyCounts(), f"{bank.name}: {exc.message}",
                                      error_code=exc.code))
            continue
        connection_id = svc.sync.register(state)
        scoped(_("Syncing {bank}…").format(bank=bank.name), 0.2)
        result = svc.sync.sync_connection(connection_id, trigger="connect", on_progress=lambda stage, f, name=(
            bank.name): scoped(f"{name}: {stage}", 0.2 + 0.8 * min(f, 1.0)))
        results.append(replace(result, message=_("{name} connected. {message}").format(name=bank.name,
                                                                                       message=result.message)))
    svc.analytics.refresh()  # the analysts' snapshot holds the demo's banks
    report(_("Done"), 1.0)
    return results
