"""The Pluggy kit: what shared code asks of Pluggy (finance.providers.base.ProviderKit), wired to its client,
provider and offline emulator."""

from __future__ import annotations

from pathlib import Path

from finance.config import PLUGGY_API_URL, Settings
from finance.connect_flow import HostedWidget
from finance.i18n import N_
from finance.providers.base import EmulatorOptions, ProviderKit, SandboxBank
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.mapping import LABEL, NAME
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.providers.pluggy.webhooks import SECRET_HEADER
from finance.sandbox.common import Emulator
from finance.store.secrets import SecretStore

OFFLINE_CREDENTIAL = "offline-sandbox"  # the emulator accepts any non-empty client id and secret


def make_emulator(options: EmulatorOptions) -> PluggyEmulator:
    headers = {SECRET_HEADER: options.webhook_secret} if options.webhook_secret else None
    return PluggyEmulator(seed=options.seed if options.seed is not None else 7, state_path=options.state_path,
                          client_id=options.client_id, client_secret=options.client_secret,
                          settle_delay=options.settle_seconds if options.settle_seconds is not None else 1.5,
                          webhook_url=options.webhook_url, webhook_headers=headers)


def make_provider(settings: Settings, secrets: SecretStore, emulator: Emulator | None) -> PluggyProvider:
    """Pluggy over the network, or through the emulator (and on its clock)."""
    now = emulator.clock.now if emulator is not None else None
    client = PluggyClient(settings.pluggy_client_id or OFFLINE_CREDENTIAL,
                          settings.pluggy_client_secret or OFFLINE_CREDENTIAL, base_url=settings.pluggy_base_url,
                          transport=emulator.transport() if emulator is not None else None, now=now)
    return PluggyProvider(client, now=now)


KIT = ProviderKit(
    name=NAME,
    label=LABEL,
    hosted_widget=HostedWidget(kind="pluggy_connect", name="Pluggy Connect",
                               # the pinned build (shared/reference/pluggy.md §8)
                               script="https://cdn.pluggy.ai/pluggy-connect/v2.7.0/pluggy-connect.js",
                               launcher=Path(__file__).with_name("connect.js"), returns_item=True),
    sandbox_hint=N_("Sandbox: pick Pluggy Bank, user user-ok, password password-ok. "
                    "user-ok-mfa asks for a code: 123456. Pluggy Bank (conexão direta) is being retired in favour "
                    "of Pluggy Bank Open Finance."),
    sandbox_bank=SandboxBank("0", "Pluggy Bank", {"user": "user-ok", "password": "password-ok"}),
    fault_targets={"/v2/transactions": N_("Transactions"), "/accounts": N_("Accounts"), "/items": N_("Items"),
                   "/investments": N_("Investments"), "/loans": N_("Loans"), "/bills": N_("Card bills"),
                   "": N_("Every request")},
    serve_hint="PLUGGY_BASE_URL={url} and any non-empty PLUGGY_CLIENT_ID/PLUGGY_CLIENT_SECRET",
    is_offline=lambda settings: settings.pluggy_offline,
    uses_hosted_widget=lambda settings: not settings.pluggy_offline and settings.pluggy_base_url == PLUGGY_API_URL,
    make_emulator=make_emulator,
    make_provider=make_provider,
)
