"""The Plaid kit: what shared code asks of Plaid (finance.providers.base.ProviderKit), wired to its client,
provider and offline emulator."""

from __future__ import annotations

from pathlib import Path

from finance.config import Settings
from finance.connect_flow import HostedWidget
from finance.errors import ReauthRequired
from finance.i18n import N_
from finance.providers.base import EmulatorOptions, ProviderKit, SandboxBank
from finance.providers.plaid.client import PlaidClient
from finance.providers.plaid.mapping import ERROR_MESSAGES, LABEL, NAME
from finance.providers.plaid.provider import PlaidProvider
from finance.providers.plaid.sandbox import PlaidApiError, PlaidEmulator
from finance.sandbox.common import Emulator
from finance.store.secrets import SecretStore

OFFLINE_CREDENTIAL = "offline-sandbox"  # the emulator accepts any non-empty client id and secret


def make_emulator(options: EmulatorOptions) -> PlaidEmulator:
    return PlaidEmulator(seed=options.seed if options.seed is not None else 7, state_path=options.state_path,
                         client_id=options.client_id, secret=options.client_secret, webhook_url=options.webhook_url)


def make_provider(settings: Settings, secrets: SecretStore, emulator: Emulator | None) -> PlaidProvider:
    """Plaid over the network, or through the emulator (and on its clock); access tokens come from the store."""
    offline = isinstance(emulator, PlaidEmulator)
    client = PlaidClient(
        settings.plaid_client_id or OFFLINE_CREDENTIAL,
        settings.plaid_secret or OFFLINE_CREDENTIAL,
        environment="sandbox" if offline else settings.plaid_env,
        base_url=settings.plaid_url,
        transport=emulator.transport() if emulator is not None else None,
        now=emulator.clock.now if emulator is not None else None,
    )

    def log_in_again(link_token: str, credentials: dict[str, str]) -> None:
        """What Plaid Link does in update mode, done by the emulator: the user logs in again."""
        assert isinstance(emulator, PlaidEmulator)
        try:
            emulator.complete_link(link_token, username=credentials.get("username", ""),
                                   password=credentials.get("password", ""))
        except PlaidApiError as exc:  # what Link's onExit would report
            raise ReauthRequired(ERROR_MESSAGES.get(exc.code) or exc.display_message or exc.message, code=exc.code,
                                 provider=NAME) from None

    return PlaidProvider(client, lambda item_id: secrets.get(NAME, item_id),
                         now=emulator.clock.now if emulator is not None else None,
                         webhook_url=settings.webhook_url(NAME), link_stand_in=log_in_again if offline else None)


KIT = ProviderKit(
    name=NAME,
    label=LABEL,
    hosted_widget=HostedWidget(kind="plaid_link", name="Plaid Link",
                               script="https://cdn.plaid.com/link/v2/stable/link-initialize.js",  # unversioned, by rule
                               launcher=Path(__file__).with_name("link.js")),
    sandbox_hint=N_("Sandbox: pick First Platypus Bank, user user_good, password pass_good. "
                    "user_transactions_dynamic (any password) brings lively pending transactions."),
    sandbox_bank=SandboxBank("ins_109508", "First Platypus Bank", {"username": "user_good", "password": "pass_good"}),
    fault_targets={"/transactions/sync": N_("Transactions"), "/accounts/get": N_("Accounts"), "/item/get": N_("Items"),
                   "/investments/": N_("Investments"), "/liabilities/get": N_("Loans and cards"),
                   "": N_("Every request")},
    serve_hint="PLAID_BASE_URL={url} and any non-empty PLAID_CLIENT_ID/PLAID_SECRET",
    is_offline=lambda settings: settings.plaid_offline,
    uses_hosted_widget=lambda settings: not settings.plaid_offline and settings.plaid_base_url is None,
    make_emulator=make_emulator,
    make_provider=make_provider,
)
