"""Settings from environment variables and .streamlit/secrets.toml (environment wins).

No credentials for a provider means that provider runs against its built-in offline emulator,
through the same client code path.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from finance.households import parse_allow_list

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRETS_FILE = REPO_ROOT / ".streamlit" / "secrets.toml"

PLUGGY_API_URL = "https://api.pluggy.ai"
PLAID_ENVIRONMENTS = {"sandbox": "https://sandbox.plaid.com", "production": "https://production.plaid.com"}
DEFAULT_SYNC_INTERVAL = timedelta(hours=6)
WEBHOOK_PATHS = {"pluggy": "/webhooks/pluggy", "plaid": "/webhooks/plaid"}
LOOPBACK = ("127.0.0.1/32", "::1/128")
EVERY_ADDRESS = ("0.0.0.0/0", "::/0")
LOCAL_HOUSEHOLD = "local"
"""The installation's first household: a single user's data before sign-in, the whole store without sign-in
(finance.store.schema's column default)."""
HOUSEHOLDS_FOLDER = "households"
_HOUSEHOLD_ID = re.compile(r"[a-z0-9-]{1,40}")


def _secrets_file_values(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {k: str(v) for k, v in data.items() if isinstance(v, str | int | float | bool)}


@dataclass(frozen=True)
class SmtpSettings:
    """Where alerts are e-mailed (`[smtp]` in .streamlit/secrets.toml); the password never appears in a repr."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True


def _smtp_settings(path: Path) -> SmtpSettings | None:
    """The `[smtp]` table of the secrets file (host, port, username, password, from, to, starttls), or None when
    there is none. `to` is one address or a list; port defaults to 587 with STARTTLS."""
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        table = tomllib.load(fh).get("smtp")
    if not table:
        return None
    if not isinstance(table, dict):
        raise ValueError("[smtp] in .streamlit/secrets.toml must be a table (see secrets.toml.example).")
    to = table.get("to")
    recipients = tuple(str(a).strip() for a in ([to] if isinstance(to, str) else to or []) if str(a).strip())
    host, sender = str(table.get("host") or "").strip(), str(table.get("from") or "").strip()
    if not host or not sender or not recipients:
        raise ValueError("[smtp] in .streamlit/secrets.toml needs host, from and to (see secrets.toml.example).")
    port = table.get("port", 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"[smtp] port must be a number from 1 to 65535 (got {port!r}).")
    starttls = table.get("starttls", True)
    if not isinstance(starttls, bool):
        raise ValueError(f"[smtp] starttls must be true or false (got {starttls!r}).")
    username, password = table.get("username"), table.get("password")
    return SmtpSettings(host=host, port=port, sender=sender, recipients=recipients,
                        username=str(username) if username else None, password=str(password) if password else None,
                        starttls=starttls)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    database_pool_size: int = 5  # PostgreSQL connections each process keeps open (FINANCE_DATABASE_POOL_SIZE)
    pluggy_client_id: str | None = None
    pluggy_client_secret: str | None = None
    pluggy_base_url: str = PLUGGY_API_URL
    plaid_client_id: str | None = None
    plaid_secret: str | None = None
    plaid_env: str = "sandbox"
    plaid_base_url: str | None = None
    encryption_key: str | None = None
    new_encryption_key: str | None = field(default=None, repr=False)  # `keys rotate` with an environment key
    sandbox_settle_seconds: float = 1.5
    public_url: str | None = None  # where the providers reach this app's webhook routes (FINANCE_PUBLIC_URL)
    allowed_hosts: tuple[str, ...] = ()  # more Host names the pages answer to (FINANCE_ALLOWED_HOSTS; finance.edge)
    webhook_secret: str | None = None  # the Pluggy webhook header secret; derived from the encryption key if unset
    webhook_allowed_ips: tuple[str, ...] = ()  # networks Pluggy webhooks may come from (empty: any)
    trusted_proxies: tuple[str, ...] = ()  # reverse proxies whose X-Forwarded-For is believed (FINANCE_TRUSTED_PROXIES)
    server_trusted_proxies: tuple[str, ...] = LOOPBACK  # peers the ASGI server (uvicorn) itself takes
    # X-Forwarded-For from, replacing the peer with an address from the header (its FORWARDED_ALLOW_IPS)
    sync_interval: timedelta | None = DEFAULT_SYNC_INTERVAL  # scheduled syncs; None turns them off
    sandbox_webhook_time_scale: float = 1.0  # multiplies the offline emulators' webhook retry delays
    smtp: SmtpSettings | None = None  # where alerts are e-mailed; None: in the app only
    household: str = LOCAL_HOUSEHOLD  # whose data these settings open (see for_household)

    def for_household(self, household: str) -> Settings:
        """These settings opened on `household`'s store: on DuckDB its own file under the local file's folder
        (`households/<id>/finance.duckdb`), on PostgreSQL the same database, where row-level security scopes it.
        The local household is these settings' own store."""
        household = valid_household(household)
        if household == self.household:
            return self
        url = self.local().database_url
        if household != LOCAL_HOUSEHOLD and url.startswith("duckdb:///"):
            local_file = Path(url.removeprefix("duckdb:///"))
            url = f"duckdb:///{local_file.parent / HOUSEHOLDS_FOLDER / household / local_file.name}"
        return replace(self, household=household, database_url=url)

    def local(self) -> Settings:
        """These settings on the local household's store (where the directory of households lives)."""
        if self.household == LOCAL_HOUSEHOLD:
            return self
        url = self.database_url
        if url.startswith("duckdb:///"):
            household_file = Path(url.removeprefix("duckdb:///"))
            url = f"duckdb:///{household_file.parent.parent.parent / household_file.name}"
        return replace(self, household=LOCAL_HOUSEHOLD, database_url=url)

    @property
    def household_dir(self) -> Path:
        """The folder of this household's own files (the analysts' snapshot, saved queries): the data folder for
        the local household, `households/<id>` under it for any other, created private (0700) when first used."""
        if self.household == LOCAL_HOUSEHOLD:
            return self.data_dir
        folder = self.data_dir / HOUSEHOLDS_FOLDER / self.household
        if not folder.is_dir():
            private_folder(folder)
        return folder

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

    def webhook_url(self, provider: str) -> str | None:
        """The URL a provider should send its webhooks to, when a public base URL is configured."""
        return f"{self.public_url}{WEBHOOK_PATHS[provider]}" if self.public_url else None

    @property
    def stale_after(self) -> timedelta:
        """Data older than this is stale: twice the sync schedule (two days when scheduled syncs are off)."""
        return 2 * self.sync_interval if self.sync_interval else timedelta(days=2)


def load_settings(env: dict[str, str] | None = None, secrets_file: Path = SECRETS_FILE) -> Settings:
    values = {**_secrets_file_values(secrets_file), **{k: v for k, v in (env or os.environ).items() if v}}
    data_dir = Path(values.get("FINANCE_DATA_DIR", REPO_ROOT / "data")).resolve()
    database_url = database_url_of(values.get("FINANCE_DATABASE_URL")) or f"duckdb:///{data_dir / 'finance.duckdb'}"
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        database_pool_size=int(_non_negative("FINANCE_DATABASE_POOL_SIZE", values.get("FINANCE_DATABASE_POOL_SIZE",
                                                                                        "5"))) or 1,
        pluggy_client_id=values.get("PLUGGY_CLIENT_ID"),
        pluggy_client_secret=values.get("PLUGGY_CLIENT_SECRET"),
        pluggy_base_url=values.get("PLUGGY_BASE_URL", PLUGGY_API_URL).rstrip("/"),
        plaid_client_id=values.get("PLAID_CLIENT_ID"),
        plaid_secret=values.get("PLAID_SECRET"),
        plaid_env=_plaid_env(values.get("PLAID_ENV", "sandbox")),
        plaid_base_url=values.get("PLAID_BASE_URL", "").rstrip("/") or None,
        encryption_key=values.get("FINANCE_ENCRYPTION_KEY"),
        new_encryption_key=values.get("FINANCE_NEW_ENCRYPTION_KEY"),
        sandbox_settle_seconds=float(values.get("FINANCE_SANDBOX_SETTLE_SECONDS", "1.5")),
        public_url=_public_url(values.get("FINANCE_PUBLIC_URL")),
        allowed_hosts=_hosts(values.get("FINANCE_ALLOWED_HOSTS", "")),
        webhook_secret=values.get("FINANCE_WEBHOOK_SECRET"),
        webhook_allowed_ips=_networks("FINANCE_WEBHOOK_ALLOWED_IPS", values.get("FINANCE_WEBHOOK_ALLOWED_IPS", "")),
        trusted_proxies=_networks("FINANCE_TRUSTED_PROXIES", values.get("FINANCE_TRUSTED_PROXIES", "")),
        server_trusted_proxies=_server_trusted((os.environ if env is None else env).get("FORWARDED_ALLOW_IPS")),
        sync_interval=parse_interval(values.get("FINANCE_SYNC_INTERVAL")),
        sandbox_webhook_time_scale=_non_negative("FINANCE_SANDBOX_WEBHOOK_TIME_SCALE",
                                                 values.get("FINANCE_SANDBOX_WEBHOOK_TIME_SCALE", "1")),
        smtp=_smtp_settings(secrets_file),
    )


def valid_household(household: str) -> str:
    """A household id as settings accept it: 1-40 lower-case letters, digits or dashes, so it names a folder and
    can never name a path outside the data folder."""
    if not isinstance(household, str) or not _HOUSEHOLD_ID.fullmatch(household):
        raise ValueError(f"A household id is 1 to 40 lower-case letters, digits or dashes (got {household!r}).")
    return household


def private_folder(folder: Path) -> Path:
    """`folder` and any missing parents, created readable by this user only (0700)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode is masked by the umask
    return folder


def _plaid_env(name: str) -> str:
    if name not in PLAID_ENVIRONMENTS:
        raise ValueError(f"PLAID_ENV must be one of {', '.join(PLAID_ENVIRONMENTS)} (got {name!r}).")
    return name


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str | None) -> timedelta | None:
    """FINANCE_SYNC_INTERVAL: `6h` (default), `90m`, `1d`, `3600` (seconds); `off` or `0` turns scheduled syncs off."""
    if text is None or not text.strip():
        return DEFAULT_SYNC_INTERVAL
    if text.strip().lower() in ("off", "none", "never", "0"):
        return None
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"FINANCE_SYNC_INTERVAL must look like 6h, 90m, 1d or a number of seconds, or be off "
                         f"(got {text!r}).")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds < 60:
        raise ValueError(f"FINANCE_SYNC_INTERVAL must be at least a minute (got {text!r}).")
    return timedelta(seconds=seconds)


DATABASE_SCHEMES = ("duckdb", "postgresql+psycopg")
"""The store's engines: DuckDB (embedded, the default) and PostgreSQL through psycopg 3."""


def database_url_of(text: str | None) -> str | None:
    """FINANCE_DATABASE_URL: a DuckDB file (duckdb:///path) or a PostgreSQL database; postgresql:// and
    postgres:// mean psycopg 3, the driver the app ships with."""
    if not text:
        return None
    url = text.strip()
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        url, scheme = f"postgresql+psycopg://{rest}", "postgresql+psycopg"
    if scheme not in DATABASE_SCHEMES or not rest:
        raise ValueError("FINANCE_DATABASE_URL must be duckdb:///path/to/file.duckdb or "
                         f"postgresql+psycopg://user:password@host/database (got a {scheme or 'bare'}:// URL).")
    return url


def _public_url(text: str | None) -> str | None:
    if not text:
        return None
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"FINANCE_PUBLIC_URL must be an http(s) base URL such as https://finance.example.com "
                         f"(got {text!r}).")
    return text.strip().rstrip("/")


def _hosts(text: str) -> tuple[str, ...]:
    """FINANCE_ALLOWED_HOSTS: comma-separated host names or addresses, each optionally with `:port`, lower-cased."""
    hosts = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        try:
            parsed = urlsplit(f"//{part}")
            parsed.port  # noqa: B018 - a port that is not a number raises here
        except ValueError:
            parsed = None
        if parsed is None or not parsed.hostname or parsed.path or parsed.username or parsed.query:
            raise ValueError(f"FINANCE_ALLOWED_HOSTS holds {part!r}, which is not a host name with an optional port "
                             "(e.g. finance.lan or 192.168.1.20:8501).")
        hosts.append(part)
    return tuple(hosts)


def _networks(name: str, text: str) -> tuple[str, ...]:
    """FINANCE_WEBHOOK_ALLOWED_IPS, FINANCE_TRUSTED_PROXIES: comma-separated addresses or networks (CIDR),
    normalized."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(f"{name} holds {part!r}, which is not an IP address or network "
                             "(e.g. 177.71.238.212 or 10.0.0.0/8).") from None
    return tuple(networks)


def _server_trusted(text: str | None) -> tuple[str, ...]:
    """Uvicorn's FORWARDED_ALLOW_IPS, read from the environment as uvicorn reads it (loopback when unset, `*` for
    everyone); entries that are not addresses (a Unix socket path) name no IP peer and are left out."""
    if text is None:
        return LOOPBACK
    if text.strip() == "*":
        return EVERY_ADDRESS
    networks = []
    for part in (p.strip() for p in text.split(",")):
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            continue
    return tuple(networks)


def _non_negative(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError(f"{name} must be a number of zero or more (got {text!r}).")
    return value


@dataclass(frozen=True)
class SignInSettings:
    """Who may sign in (FINANCE_ALLOWED_EMAILS) and whether the app may serve beyond this computer without sign-in
    (FINANCE_ALLOW_UNAUTHENTICATED_REMOTE); sign-in itself is Streamlit's `[auth]` section of the secrets file."""

    allowed_emails: tuple[str, ...] = ()
    allow_unauthenticated_remote: bool = False


def load_sign_in_settings(env: dict[str, str] | None = None, secrets_file: Path = SECRETS_FILE) -> SignInSettings:
    """The sign-in settings, from the environment or the secrets file (environment wins), checked."""
    values = {**_secrets_file_values(secrets_file), **{k: v for k, v in (env or os.environ).items() if v}}
    override = values.get("FINANCE_ALLOW_UNAUTHENTICATED_REMOTE", "false").strip().lower()
    if override not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"FINANCE_ALLOW_UNAUTHENTICATED_REMOTE must be true or false (got {override!r}).")
    return SignInSettings(allowed_emails=parse_allow_list(values.get("FINANCE_ALLOWED_EMAILS")),
                          allow_unauthenticated_remote=override in ("true", "1", "yes"))
