"""Settings from environment variables and .streamlit/secrets.toml (environment wins).

No credentials for a provider means that provider runs against its built-in offline emulator,
through the same client code path.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRETS_FILE = REPO_ROOT / ".streamlit" / "secrets.toml"

PLUGGY_API_URL = "https://api.pluggy.ai"
PLAID_ENVIRONMENTS = {"sandbox": "https://sandbox.plaid.com", "production": "https://production.plaid.com"}


def _secrets_file_values(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {k: str(v) for k, v in data.items() if isinstance(v, str | int | float | bool)}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    pluggy_client_id: str | None = None
    pluggy_client_secret: str | None = None
    pluggy_base_url: str = PLUGGY_API_URL
    plaid_client_id: str | None = None
    plaid_secret: str | None = None
    plaid_env: str = "sandbox"
    plaid_base_url: str | None = None
    encryption_key: str | None = None
    sandbox_settle_seconds: float = 1.5

    @property
    def pluggy_offline(self) -> bool:
        """True when Pluggy runs against the in-process emulator (no credentials, no custom URL)."""
        return not (self.pluggy_client_id and self.pluggy_client_secret) and self.pluggy_base_url == PLUGGY_API_URL

    @property
    def plaid_offline(self) -> bool:
        """True when Plaid runs against the in-process emulator (no credentials, no custom URL)."""
        return not (self.plaid_client_id and self.plaid_secret) and self.plaid_base_url is None

    @property
    def plaid_url(self) -> str:
        return self.plaid_base_url or PLAID_ENVIRONMENTS["sandbox" if self.plaid_offline else self.plaid_env]

    @property
    def sandbox_state_dir(self) -> Path:
        return self.data_dir / "sandbox"


def load_settings(env: dict[str, str] | None = None, secrets_file: Path = SECRETS_FILE) -> Settings:
    values = {**_secrets_file_values(secrets_file), **{k: v for k, v in (env or os.environ).items() if v}}
    data_dir = Path(values.get("FINANCE_DATA_DIR", REPO_ROOT / "data")).resolve()
    database_url = values.get("FINANCE_DATABASE_URL") or f"duckdb:///{data_dir / 'finance.duckdb'}"
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        pluggy_client_id=values.get("PLUGGY_CLIENT_ID"),
        pluggy_client_secret=values.get("PLUGGY_CLIENT_SECRET"),
        pluggy_base_url=values.get("PLUGGY_BASE_URL", PLUGGY_API_URL).rstrip("/"),
        plaid_client_id=values.get("PLAID_CLIENT_ID"),
        plaid_secret=values.get("PLAID_SECRET"),
        plaid_env=_plaid_env(values.get("PLAID_ENV", "sandbox")),
        plaid_base_url=values.get("PLAID_BASE_URL", "").rstrip("/") or None,
        encryption_key=values.get("FINANCE_ENCRYPTION_KEY"),
        sandbox_settle_seconds=float(values.get("FINANCE_SANDBOX_SETTLE_SECONDS", "1.5")),
    )


def _plaid_env(name: str) -> str:
    if name not in PLAID_ENVIRONMENTS:
        raise ValueError(f"PLAID_ENV must be one of {', '.join(PLAID_ENVIRONMENTS)} (got {name!r}).")
    return name
