"""Command line: `python -m finance sandbox serve|advance`, `connect`, `sync`, `status`."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from finance import config
from finance.config import load_settings
from finance.crypto import SecretError
from finance.demo import ConnectFailed, connect_bank
from finance.errors import ProviderError, StoreError
from finance.formatting import format_money, format_when
from finance.model import MfaPrompt
from finance.providers import registry
from finance.providers.base import EmulatorOptions, ProviderKit
from finance.sandbox.common import LOOPBACK_HOSTS, Emulator
from finance.services import open_services
from finance.store import accounts, connections, migrate
from finance.store.copy import copy_store
from finance.store.db import create_engine, init_schema, store_error


def _progress_bar(label: str, fraction: float, width: int = 30) -> None:
    filled = round(fraction * width)
    sys.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} {label:<40}")
    sys.stdout.flush()
    if fraction >= 1:
        sys.stdout.write("\n")


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    if args.webhook_url and urlsplit(args.webhook_url).hostname not in LOOPBACK_HOSTS:
        print(f"error: --webhook-url must point at this machine (127.0.0.1 or localhost): the emulators are "
              f"offline and deliver over loopback only (got {args.webhook_url}).", file=sys.stderr)
        return 2
    kit = registry.kit(args.provider)
    emulator = kit.make_emulator(EmulatorOptions(
        state_path=Path(args.state) if args.state else None, seed=args.seed, client_id=args.client_id,
        client_secret=args.client_secret, settle_seconds=args.settle_seconds, webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret))
    server = emulator.serve(port=args.port)
    emulator.deliver_webhooks(time_scale=args.webhook_time_scale)
    print(f"{kit.label} emulator listening on {server.base_url} (Ctrl+C to stop).", flush=True)
    print("Point the app at it with " + kit.serve_hint.format(url=server.base_url) + ".", flush=True)
    if args.webhook_url:
        print(f"Webhooks go to {args.webhook_url}.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        emulator.stop_webhook_delivery()
    return 0


def _sandbox(args: argparse.Namespace) -> Emulator:
    """The emulator a sandbox command acts on: the app's (under data/sandbox/), or the one on --state."""
    return registry.emulator(args.provider, load_settings(), Path(args.state) if args.state else None)


def cmd_sandbox_advance(args: argparse.Namespace) -> int:
    emulator = _sandbox(args)
    emulator.advance(days=args.days, hours=args.hours)
    told = " The running app is told by webhook." if load_settings().public_url and not args.state else ""
    print(f"Sandbox clock is now {emulator.clock.now():%Y-%m-%d %H:%M} UTC.{told or ' Sync to see what changed.'}")
    return 0


def cmd_sandbox_reset_login(args: argparse.Namespace) -> int:
    """Break a sandbox login, as a bank would after a password change (with the provider's webhook)."""
    emulator = _sandbox(args)
    ids = emulator.item_ids()
    targets = [args.item] if args.item else ids
    if not targets:
        print("No sandbox items yet: connect a bank first.")
        return 1
    for item_id in targets:
        try:
            emulator.break_login(item_id)
        except KeyError:
            print(f"No sandbox item {item_id}. Items: {', '.join(ids) or 'none'}")
            return 1
        print(f"{item_id}: the bank now asks for a new login; reconnect it in the app.")
    return 0


def _ask(prompt: str, secret: bool = False) -> str:
    return getpass.getpass(prompt) if secret else input(prompt)


def cmd_connect(args: argparse.Namespace) -> int:
    services = open_services()
    provider = services.providers[args.provider]
    institution = args.institution
    if institution is None:
        options = provider.institutions()
        for inst in options:
            print(f"  {inst.id:>6}  {inst.name}{'  (sandbox)' if inst.is_sandbox else ''}")
        institution = _ask(f"Institution id [{options[0].id}]: ").strip() or options[0].id
    credentials: dict[str, str] = {}
    for field in provider.credential_fields(institution):
        name = str(field["name"])
        given = args.password if name == "password" else args.user if name in ("user", "username") else None
        credentials[name] = given or _ask(f"{field.get('label') or name}: ", secret=field.get("type") == "password")

    def ask_mfa(prompt: MfaPrompt) -> str:
        code = args.mfa or _ask(f"{prompt.label}{' — ' + prompt.instructions if prompt.instructions else ''}: ")
        args.mfa = None  # a given code is tried once; a second prompt means it was refused
        return code

    try:
        state = connect_bank(provider, institution, credentials, ask_mfa=ask_mfa,
                             on_progress=lambda s: print(f"  bank: {s}", flush=True))
    except ConnectFailed as exc:
        print(exc.message)
        return 1
    connection_id = services.sync.register(state)
    print(f"Connected {state.institution.name if state.institution else 'bank'} ({connection_id}). Syncing…")
    result = services.sync.sync_connection(connection_id, trigger="connect", on_progress=_progress_bar)
    print(result.message)
    return 0 if result.outcome == "success" else 1


def cmd_sync(args: argparse.Namespace) -> int:
    services = open_services()
    if args.connection:
        results = [services.sync.sync_connection(args.connection, trigger="cli", on_progress=_progress_bar)]
    else:
        results = services.sync.sync_all(trigger="cli", on_progress=_progress_bar)
    if not results:
        print("No connections yet. Connect one with: python -m finance connect")
        return 0
    failed = [r for r in results if r.outcome == "failed"]
    if len(failed) == len(results) and {r.error_code for r in failed} == {failed[0].error_code} \
            and (failed[0].error_code or "").startswith("STORE_"):
        raise StoreError(failed[0].message, code=failed[0].error_code)  # the store failed, not each bank
    for result in results:
        print(f"{result.connection_id}: {result.outcome} — {result.message}")
    return 0 if all(r.outcome != "failed" for r in results) else 1


def cmd_status(_args: argparse.Namespace) -> int:
    services = open_services()
    with services.engine.connect() as conn:
        status = connections.connections_status(conn)
        totals = accounts.balance_totals(conn)
    if status.empty:
        print("No connections yet. Connect one with: python -m finance connect")
        return 0
    for row in status.itertuples():
        last = format_when(row.last_success_at)
        print(f"{row.institution_name} [{row.provider}] {row.status} — {row.accounts} accounts, last sync {last}")
        if row.last_message:
            print(f"    last run: {row.last_outcome}: {row.last_message}")
        if row.status_detail:
            print(f"    {row.status_detail}")
    for row in totals.itertuples():
        print(f"Net worth ({row.currency}): {format_money(row.net_worth, row.currency)}")
    return 0


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    """Bring the store named by the settings to the newest schema revision; prints it."""
    engine = create_engine(load_settings().database_url)
    try:
        init_schema(engine)
        print(f"The database is at schema revision {migrate.current_revision(engine)} (the newest).")
    finally:
        engine.dispose()
    return 0


def cmd_db_copy(args: argparse.Namespace) -> int:
    """Copy the DuckDB store named by the settings into the empty PostgreSQL database at --to."""
    source = create_engine(load_settings().database_url)
    try:
        target = create_engine(config.database_url_of(args.to) or args.to)
        try:
            counts = copy_store(source, target)
            init_schema(target)
        finally:
            target.dispose()
    finally:
        source.dispose()
    for name, rows in counts.items():
        print(f"{name}: {rows} rows")
    print(f"Copied {sum(counts.values())} rows; every table's count matches the source. Set FINANCE_DATABASE_URL "
          "to the new database (and keep the same FINANCE_ENCRYPTION_KEY or data/secret.key) to use it.")
    return 0


def _sandbox_login(kit: ProviderKit) -> tuple[str, str]:
    """(username, password) of a provider's sandbox bank, for the help texts."""
    values = list(kit.sandbox_bank.credentials.values())
    return (values[0], values[-1]) if values else ("", "")


def build_parser() -> argparse.ArgumentParser:
    names = registry.names()
    parser = argparse.ArgumentParser(prog="python -m finance", description="Open Finance dashboard tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    sandbox = sub.add_parser("sandbox", help="offline provider emulators").add_subparsers(dest="action",
                                                                                        required=True)
    serve = sandbox.add_parser("serve", help="serve an emulator over HTTP on 127.0.0.1")
    serve.add_argument("--provider", choices=names, default=names[0])
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--state", help="JSON file to keep the emulator's items and clock in")
    serve.add_argument("--client-id", help="require this client id (default: accept any non-empty)")
    serve.add_argument("--client-secret", help="require this client secret")
    serve.add_argument("--settle-seconds", type=float, default=1.5, help="how long a new item takes to sync")
    serve.add_argument("--webhook-url", help="send webhooks here (loopback only): every event of an application "
                                             "webhook, or of the items created without a webhook of their own")
    serve.add_argument("--webhook-secret", help="the secret header sent with --webhook-url, where the provider "
                                                "authenticates with one (the app also registers its own at start-up)")
    serve.add_argument("--webhook-time-scale", type=float, default=1.0,
                       help="multiply the providers' webhook retry delays (e.g. 0.001 turns hours into seconds)")
    serve.set_defaults(func=cmd_sandbox_serve)
    advance = sandbox.add_parser("advance", help="move the sandbox clock forward (new and posted transactions)")
    advance.add_argument("--provider", choices=names, default=names[0])
    advance.add_argument("--days", type=float, default=1)
    advance.add_argument("--hours", type=float, default=0)
    advance.add_argument("--state", help="emulator state file (default: the app's, under data/sandbox/)")
    advance.set_defaults(func=cmd_sandbox_advance)
    reset = sandbox.add_parser("reset-login", help="make a sandbox bank ask for a new login (reconnect needed)")
    reset.add_argument("--provider", choices=names, default=names[0])
    reset.add_argument("--item", help="the item id (default: every item)")
    reset.add_argument("--state", help="emulator state file (default: the app's, under data/sandbox/)")
    reset.set_defaults(func=cmd_sandbox_reset_login)

    connect = sub.add_parser("connect", help="connect a bank from the terminal")
    connect.add_argument("--provider", choices=names, default=names[0])
    connect.add_argument("--institution", help="the institution id; sandbox: " + "; ".join(
        f"{k.label} {k.sandbox_bank.institution_id} ({k.sandbox_bank.name})" for k in registry.KITS))
    connect.add_argument("--user", help="bank username; sandbox: " + "; ".join(
        f"{k.label} {_sandbox_login(k)[0]}" for k in registry.KITS))
    connect.add_argument("--password", help="bank password, prompted when omitted; sandbox: " + "; ".join(
        f"{k.label} {_sandbox_login(k)[1]}" for k in registry.KITS))
    connect.add_argument("--mfa", help="the one-time code, if the bank asks (sandbox: 123456)")
    connect.set_defaults(func=cmd_connect)

    sync = sub.add_parser("sync", help="sync every connection (or one) now")
    sync.add_argument("--connection", help=f"a connection id, e.g. {names[0]}:<item id>")
    sync.set_defaults(func=cmd_sync)

    status = sub.add_parser("status", help="connections, their health and net worth")
    status.set_defaults(func=cmd_status)

    db = sub.add_parser("db", help="the store's schema and moving it").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="bring the database to the newest schema revision (safe to repeat)").set_defaults(
        func=cmd_db_upgrade)
    copy = db.add_parser("copy", help="copy the DuckDB store into an empty PostgreSQL database")
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql+psycopg://user:password@host/database")
    copy.set_defaults(func=cmd_db_copy)
    parser.add_argument("--verbose", "-v", action="store_true", help="log progress, and errors with their tracebacks")
    return parser


class _OneLine(logging.Formatter):
    """Log records as one line each, without tracebacks (`--verbose` shows them)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname.lower()}: {record.getMessage()}"
        return f"{line} (run with --verbose for details)" if record.exc_info else line


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The CLI's log output on stderr; each `main` call installs its own (the stderr of that call)."""


def _configure_logging(verbose: bool) -> None:
    """Errors as one line on stderr; with --verbose, info and warnings too, with tracebacks. The printed results
    already say what each sync did, so its warnings stay out of the way by default."""
    logger = logging.getLogger("finance")
    for old in [h for h in logger.handlers if isinstance(h, _CliHandler)]:
        logger.removeHandler(old)
    handler = _CliHandler(sys.stderr)
    handler.setLevel(logging.INFO if verbose else logging.ERROR)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if verbose else _OneLine())
    logger.setLevel(logging.INFO if verbose else logging.NOTSET)
    logger.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; a store, key or provider problem is one line on stderr saying what to do (no traceback)."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except (StoreError, SecretError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ProviderError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # a store failing under a command (a read, a write): say so; anything else is a bug
        problem = store_error(exc)
        if problem is None:
            raise
        print(f"error: {problem.message}", file=sys.stderr)
        return 2
