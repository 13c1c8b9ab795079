"""Command line: `python -m finance sandbox serve|advance`, `connect`, `sync`, `status`, `worker`, `import`, `db`,
`keys` (finance.cli_keys)."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from finance import analytics, cli_analyst, cli_keys, config, control, jobs
from finance.config import load_settings
from finance.crypto import SecretError
from finance.demo import ConnectFailed, connect_bank
from finance.errors import BadFile, EditError, ProviderError, StoreError
from finance.formatting import format_money
from finance.health import outcome_label, status_label
from finance.i18n import _, format_timestamp, ngettext, using
from finance.imports.csv_reader import DELIMITERS, with_overrides
from finance.imports.text import DATE_FORMATS, ENCODINGS
from finance.logs import BoundedLines
from finance.model import AccountType, MfaPrompt
from finance.providers import registry
from finance.providers.base import EmulatorOptions, ProviderKit
from finance.sandbox.common import LOOPBACK_HOSTS, Emulator
from finance.services import Services, open_services
from finance.store import accounts, connections, migrate
from finance.store import jobs as job_tables
from finance.store.copy import copy_store
from finance.store.db import create_engine, init_schema, store_error
from finance.store.snapshot import snapshot_engine


def _progress_bar(label: str, fraction: float, width: int = 30) -> None:
    filled = round(fraction * width)
    sys.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} {label:<40}")
    sys.stdout.flush()
    if fraction >= 1:
        sys.stdout.write("\n")


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    if args.webhook_url and urlsplit(args.webhook_url).hostname not in LOOPBACK_HOSTS:
        print(_("error: --webhook-url must point at this machine (127.0.0.1 or localhost): the emulators are offline "
                "and deliver over loopback only (got {url}).").format(url=args.webhook_url), file=sys.stderr)
        return 2
    kit = registry.kit(args.provider)
    emulator = kit.make_emulator(EmulatorOptions(
        state_path=Path(args.state) if args.state else None, seed=args.seed, client_id=args.client_id,
        client_secret=args.client_secret, settle_seconds=args.settle_seconds, webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret))
    server = emulator.serve(port=args.port)
    emulator.deliver_webhooks(time_scale=args.webhook_time_scale)
    print(_("{provider} emulator listening on {url} (Ctrl+C to stop).").format(provider=kit.label,
                                                                             url=server.base_url), flush=True)
    print(_("Point the app at it with {settings}.").format(settings=kit.serve_hint.format(url=server.base_url)),
          flush=True)
    if args.webhook_url:
        print(_("Webhooks go to {url}.").format(url=args.webhook_url), flush=True)
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
    told = _("The running app is told by webhook.") if load_settings().public_url and not args.state else \
        _("Sync to see what changed.")
    print(_("Sandbox clock is now {when} UTC.").format(when=format_timestamp(emulator.clock.now())), told)
    return 0


def cmd_sandbox_reset_login(args: argparse.Namespace) -> int:
    """Break a sandbox login, as a bank would after a password change (with the provider's webhook)."""
    emulator = _sandbox(args)
    ids = emulator.item_ids()
    targets = [args.item] if args.item else ids
    if not targets:
        print(_("No sandbox items yet: connect a bank first."))
        return 1
    for item_id in targets:
        try:
            emulator.break_login(item_id)
        except KeyError:
            print(_("No sandbox item {item}. Items: {items}").format(item=item_id, items=", ".join(ids) or _("none")))
            return 1
        print(_("{item}: the bank now asks for a new login; reconnect it in the app.").format(item=item_id))
    return 0


def _ask(prompt: str, secret: bool = False) -> str:
    return getpass.getpass(prompt) if secret else input(prompt)


class Terminal:
    """Where a command's output, prompts and progress go: this terminal. When the app runs, the command runs in the
    app's process (finance.control_server) with a terminal that relays all three to the CLI."""

    def say(self, text: str) -> None:
        print(text, flush=True)

    def ask(self, prompt: str, secret: bool = False) -> str:
        return _ask(prompt, secret)

    def progress(self, label: str, fraction: float) -> None:
        _progress_bar(label, fraction)


def _running_app() -> control.RunningApp | None:
    return cli_analyst.app_holding_store(load_settings())


def _run_in_app(app: control.RunningApp, op: str, args: argparse.Namespace) -> int:
    terminal = Terminal()
    print(_("The app is running (pid {pid}): it runs this {command} and shows it on its pages.").format(
        pid=app.pid, command=op), flush=True)
    return control.run_job(app, op, vars(args), say=terminal.say, progress=terminal.progress, ask=terminal.ask)


def cmd_connect(args: argparse.Namespace) -> int:
    app = _running_app()
    return _run_in_app(app, "connect", args) if app else connect_flow(open_services(), args, Terminal())


def connect_flow(services: Services, args: argparse.Namespace, term: Terminal) -> int:
    """Connect a bank (prompting for what is missing from `args`), register it and run its first sync."""
    provider = services.providers[args.provider]
    institution = args.institution
    if institution is None:
        options = provider.institutions()
        for inst in options:
            term.say(f"  {inst.id:>6}  {inst.name}" + ("  " + _("(sandbox)") if inst.is_sandbox else ""))
        institution = term.ask(_("Institution id [{default}]: ").format(default=options[0].id)).strip() \
            or options[0].id
    credentials: dict[str, str] = {}
    for field in provider.credential_fields(institution):
        name = str(field["name"])
        given = args.password if name == "password" else args.user if name in ("user", "username") else None
        credentials[name] = given or term.ask(f"{field.get('label') or name}: ",
                                              secret=field.get("type") == "password")

    def ask_mfa(prompt: MfaPrompt) -> str:
        code = args.mfa or term.ask(f"{prompt.label}{' — ' + prompt.instructions if prompt.instructions else ''}: ")
        args.mfa = None  # a given code is tried once; a second prompt means it was refused
        return code

    try:
        state = connect_bank(provider, institution, credentials, ask_mfa=ask_mfa,
                             on_progress=lambda s: term.say("  " + _("bank: {step}").format(step=s)))
    except ConnectFailed as exc:
        term.say(exc.message)
        return 1
    connection_id = services.sync.register(state)
    term.say(_("Connected {bank} ({connection}). Syncing…").format(
        bank=state.institution.name if state.institution else _("the bank"), connection=connection_id))
    result = services.sync.sync_connection(connection_id, trigger="connect", on_progress=term.progress)
    term.say(result.message)
    return 0 if result.outcome == "success" else 1


def cmd_sync(args: argparse.Namespace) -> int:
    app = _running_app()
    return _run_in_app(app, "sync", args) if app else sync_flow(open_services(), args, Terminal())


def sync_flow(services: Services, args: argparse.Namespace, term: Terminal) -> int:
    """Sync one connection (`args.connection`) or all of them, with a progress bar; one line per connection."""
    if args.connection:
        results = [services.sync.sync_connection(args.connection, trigger="cli", on_progress=term.progress)]
    else:
        results = services.sync.sync_all(trigger="cli", on_progress=term.progress)
    if not results:
        term.say(_("No connections yet. Connect one with: python -m finance connect"))
        return 0
    failed = [r for r in results if r.outcome == "failed"]
    if len(failed) == len(results) and {r.error_code for r in failed} == {failed[0].error_code} \
            and (failed[0].error_code or "").startswith("STORE_"):
        raise StoreError(failed[0].message, code=failed[0].error_code)  # the store failed, not each bank
    for result in results:
        term.say(f"{result.connection_id}: {outcome_label(result.outcome)} — {result.message}")
    return 0 if all(r.outcome != "failed" for r in results) else 1


def cmd_status(_args: argparse.Namespace) -> int:
    app = _running_app()
    engine = snapshot_engine(analytics.snapshot_path(load_settings().data_dir)) if app else open_services().engine
    if app:
        print(_("The app is running (pid {pid}): as of its last sync.").format(pid=app.pid))
    try:
        with engine.connect() as conn:
            status = connections.connections_status(conn)
            totals = accounts.balance_totals(conn)
    finally:
        if app:
            engine.dispose()
    if status.empty:
        print(_("No connections yet. Connect one with: python -m finance connect"))
        return 0
    for row in status.itertuples():
        accounts_text = ngettext("{count} account", "{count} accounts", row.accounts).format(count=row.accounts)
        print(f"{row.institution_name} [{row.provider}] {status_label(row.status)} — {accounts_text}, " +
              _("last sync {when}").format(when=format_timestamp(row.last_success_at)))
        if row.last_message:
            print("    " + _("last run: {outcome}: {message}").format(outcome=outcome_label(row.last_outcome),
                                                                      message=row.last_message))
        if row.status_detail:
            print(f"    {row.status_detail}")
    for row in totals.itertuples():
        print(_("Net worth ({currency}): {amount}").format(currency=row.currency,
                                                            amount=format_money(row.net_worth, row.currency)))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run background jobs (webhook events, their syncs, scheduled syncs, the reaper) on a PostgreSQL store."""
    services = open_services()
    if not jobs.uses_queue(services.engine):
        print(_("The store is DuckDB: the app runs background work in its own process, so no worker is needed (and "
                "none could open the file while the app runs). Workers are for a PostgreSQL store "
                "(FINANCE_DATABASE_URL=postgresql+psycopg://…)."), file=sys.stderr)
        return 2
    with services.engine.connect() as conn:
        ready = job_tables.has_queue(conn)
    if not ready:
        print(_("The database has no job queue yet: run `python -m finance db upgrade` first."), file=sys.stderr)
        return 2
    queue = jobs.JobQueue(services, pool_size=args.concurrency + 2)
    url = services.engine.url
    print(_("Worker running jobs of {database} ({count} at a time); Ctrl-C or SIGTERM stops it after the running "
            "jobs.").format(database=f"{url.host}:{url.port or 5432}/{url.database}", count=args.concurrency),
          flush=True)
    queue.run_worker(concurrency=args.concurrency)
    return 0


MAPPING_FLAGS = ("date", "description", "amount", "debit", "credit", "id", "balance", "date_format", "decimal",
                 "delimiter", "encoding")


def cmd_import(args: argparse.Namespace) -> int:
    """Import a CSV or OFX file into an account, list the imports, or undo one (see the Import files page)."""
    imports = open_services().imports
    if args.undo:
        print(imports.undo(args.undo, actor="cli"))
        return 0
    if args.list or not args.file:
        for row in imports.history().itertuples():
            state = _("undone {when}").format(when=format_timestamp(row.undone_at)) if row.undone_at is not None \
                else ngettext("{count} row", "{count} rows", row.rows_now).format(count=row.rows_now)
            print(f"{row.id}  {format_timestamp(row.imported_at)}  {row.file_name!r} → {row.account}: " + _(
                "{added} added, {duplicates} already synced, {earlier} imported before ({state})").format(
                    added=row.added, duplicates=row.duplicates, earlier=row.already_imported, state=state))
        return 0
    accounts = imports.accounts()
    if args.new_account and not args.currency:
        print(_("error: a new account needs its --currency (e.g. BRL)."), file=sys.stderr)
        return 2
    if not args.new_account and args.account not in set(accounts["id"]):
        print(_("error: choose the account with --account (or make one with --new-account); the accounts are:"),
              file=sys.stderr)
        for row in accounts.itertuples():
            print(f"  {row.id}  {row.label}", file=sys.stderr)
        return 2
    path = Path(args.file)
    data = path.read_bytes()
    mapping = None
    if imports.kind(path.name, data) == "csv":
        mapping, saved = imports.mapping_for(args.account or "", imports.sniff(data))
        changes = {k: getattr(args, k) for k in MAPPING_FLAGS if getattr(args, k) is not None}
        mapping = with_overrides(mapping, **changes, **({"negate": True} if args.negate else {}))
        print((_("Using the mapping saved for this account") if saved and not changes else _("Using the mapping"))
              + f": {mapping.to_json()}")
    rows = imports.read(path.name, data, mapping)  # the whole file, before anything is created
    if args.new_account:
        if args.dry_run:
            print(ngettext("{count} row would go into a new account {name}.",
                           "{count} rows would go into a new account {name}.", len(rows)).format(
                count=len(rows), name=repr(args.new_account)))
            return 0
        args.account = imports.create_account(args.new_account, args.currency, args.type, actor="cli")
        print(_("Created the manual account {account}.").format(account=args.account))
    preview = imports.preview(args.account, path.name, data, mapping)
    counts = preview.counts()
    print(_("{rows} rows: {new} new, {duplicates} already synced, {earlier} imported before, {ambiguous} possible "
            "duplicates.").format(rows=len(preview.rows), new=counts["new"], duplicates=counts["duplicate"],
                                  earlier=counts["already imported"], ambiguous=counts["ambiguous"]))
    table = preview.table()
    ambiguous = table[table["outcome"] == "ambiguous"]
    for row in ambiguous.itertuples():
        print("  " + _("line {line}: {date} {description} {amount} — stored: {matches}").format(
            line=row.line, date=row.date, description=repr(row.description), amount=f"{row.amount:.2f}",
            matches=repr(row.matches)))
    if args.dry_run:
        return 0
    if len(ambiguous) and not args.ambiguous:
        print(_("error: decide the possible duplicates with --ambiguous keep or --ambiguous skip (or one by one on "
                "the Import files page). Nothing was imported."), file=sys.stderr)
        return 1
    print(imports.commit(preview, dict.fromkeys(ambiguous["id"], args.ambiguous), actor="cli"))
    return 0


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    """Bring the store named by the settings to the newest schema revision; prints it."""
    engine = create_engine(load_settings().database_url)
    try:
        init_schema(engine)
        print(_("The database is at schema revision {revision} (the newest).").format(
            revision=migrate.current_revision(engine)))
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
        print(f"{name}: " + ngettext("{count} row", "{count} rows", rows).format(count=rows))
    print(_("Copied {count} rows; every table's count matches the source. Set FINANCE_DATABASE_URL to the new "
            "database (and keep the same FINANCE_ENCRYPTION_KEY or data/secret.key) to use it.").format(
                count=sum(counts.values())))
    return 0


def _sandbox_login(kit: ProviderKit) -> tuple[str, str]:
    """(username, password) of a provider's sandbox bank, for the help texts."""
    values = list(kit.sandbox_bank.credentials.values())
    return (values[0], values[-1]) if values else ("", "")


def build_parser() -> argparse.ArgumentParser:
    names = registry.names()
    parser = argparse.ArgumentParser(prog="python -m finance", description=_("Open Finance dashboard tools."))
    sub = parser.add_subparsers(dest="command", required=True)

    sandbox = sub.add_parser("sandbox", help=_("offline provider emulators")).add_subparsers(dest="action",
                                                                                        required=True)
    serve = sandbox.add_parser("serve", help=_("serve an emulator over HTTP on 127.0.0.1"))
    serve.add_argument("--provider", choices=names, default=names[0])
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--state", help=_("JSON file to keep the emulator's items and clock in"))
    serve.add_argument("--client-id", help=_("require this client id (default: accept any non-empty)"))
    serve.add_argument("--client-secret", help=_("require this client secret"))
    serve.add_argument("--settle-seconds", type=float, default=1.5, help=_("how long a new item takes to sync"))
    serve.add_argument("--webhook-url", help=_("send webhooks here (loopback only): every event of an application "
                                             "webhook, or of the items created without a webhook of their own"))
    serve.add_argument("--webhook-secret", help=_("the secret header sent with --webhook-url, where the provider "
                                                "authenticates with one (the app also registers its own at start-up)"))
    serve.add_argument("--webhook-time-scale", type=float, default=1.0,
                       help=_("multiply the providers' webhook retry delays (e.g. 0.001 turns hours into seconds)"))
    serve.set_defaults(func=cmd_sandbox_serve)
    advance = sandbox.add_parser("advance", help=_("move the sandbox clock forward (new and posted transactions)"))
    advance.add_argument("--provider", choices=names, default=names[0])
    advance.add_argument("--days", type=float, default=1)
    advance.add_argument("--hours", type=float, default=0)
    advance.add_argument("--state", help=_("emulator state file (default: the app's, under data/sandbox/)"))
    advance.set_defaults(func=cmd_sandbox_advance)
    reset = sandbox.add_parser("reset-login", help=_("make a sandbox bank ask for a new login (reconnect needed)"))
    reset.add_argument("--provider", choices=names, default=names[0])
    reset.add_argument("--item", help=_("the item id (default: every item)"))
    reset.add_argument("--state", help=_("emulator state file (default: the app's, under data/sandbox/)"))
    reset.set_defaults(func=cmd_sandbox_reset_login)

    connect = sub.add_parser("connect", help=_("connect a bank from the terminal"))
    connect.add_argument("--provider", choices=names, default=names[0])
    connect.add_argument("--institution", help=_("the institution id; sandbox: ") + "; ".join(
        f"{k.label} {k.sandbox_bank.institution_id} ({k.sandbox_bank.name})" for k in registry.KITS))
    connect.add_argument("--user", help=_("bank username; sandbox: ") + "; ".join(
        f"{k.label} {_sandbox_login(k)[0]}" for k in registry.KITS))
    connect.add_argument("--password", help=_("bank password, prompted when omitted; sandbox: ") + "; ".join(
        f"{k.label} {_sandbox_login(k)[1]}" for k in registry.KITS))
    connect.add_argument("--mfa", help=_("the one-time code, if the bank asks (sandbox: 123456)"))
    connect.set_defaults(func=cmd_connect)

    sync = sub.add_parser("sync", help=_("sync every connection (or one) now"))
    sync.add_argument("--connection",
                      help=_("a connection id, e.g. {example}").format(example=f"{names[0]}:<item id>"))
    sync.set_defaults(func=cmd_sync)

    status = sub.add_parser("status", help=_("connections, their health and net worth"))
    status.set_defaults(func=cmd_status)
    cli_analyst.add_commands(sub)
    cli_keys.add_commands(sub)

    worker = sub.add_parser("worker", help=_("run background jobs: webhooks, syncs, the schedule (PostgreSQL store)"))
    worker.add_argument("--concurrency", type=_positive, default=jobs.DEFAULT_CONCURRENCY,
                        help=_("syncs this worker runs at once (default {count})").format(
                            count=jobs.DEFAULT_CONCURRENCY))
    worker.set_defaults(func=cmd_worker)

    imp = sub.add_parser("import", help=_("import a bank's CSV or OFX file into an account; list or undo imports"),
                         description=_("CSV columns come from the mapping saved for the account (the Import files "
                                       "page saves it), else a guess from the headers; flags override either."))
    imp.add_argument("file", nargs="?", help=_("the CSV or OFX file"))
    imp.add_argument("--account", help=_("the account id (run without it to list them)"))
    imp.add_argument("--new-account", metavar="NAME", help=_("create a manual account (a bank no aggregator "
                                                              "reaches) and import into it"))
    imp.add_argument("--currency", help=_("the new account's currency, e.g. BRL"))
    imp.add_argument("--type", default="checking", choices=[t.value for t in AccountType],
                     help=_("the new account's type"))
    imp.add_argument("--dry-run", action="store_true", help=_("only show what would be imported"))
    imp.add_argument("--ambiguous", choices=("keep", "skip"), help=_("what to do with every possible duplicate"))
    imp.add_argument("--list", action="store_true", help=_("list the imports"))
    imp.add_argument("--undo", metavar="IMPORT_ID", help=_("remove every row one import added"))
    for name in ("date", "description", "amount", "debit", "credit", "id", "balance"):
        imp.add_argument(f"--{name}", metavar="COLUMN", help=_("the CSV's {name} column").format(name=name))
    imp.add_argument("--date-format", choices=DATE_FORMATS)
    imp.add_argument("--decimal", choices=(",", "."))
    imp.add_argument("--delimiter", choices=DELIMITERS)
    imp.add_argument("--encoding", choices=ENCODINGS)
    imp.add_argument("--negate", action="store_true", help=_("the file shows spending as positive amounts"))
    imp.set_defaults(func=cmd_import)

    db = sub.add_parser("db", help=_("the store's schema and moving it")).add_subparsers(dest="action",
                                                                                        required=True)
    db.add_parser("upgrade", help=_("bring the database to the newest schema revision (safe to repeat)")
                  ).set_defaults(func=cmd_db_upgrade)
    copy = db.add_parser("copy", help=_("copy the DuckDB store into an empty PostgreSQL database"))
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql+psycopg://user:password@host/database")
    copy.set_defaults(func=cmd_db_copy)
    parser.add_argument("--verbose", "-v", action="store_true",
                        help=_("log progress, and errors with their tracebacks"))
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(_("must be a whole number of at least 1 (got {text})").format(text=repr(text)))
    return int(text)


class _OneLine(logging.Formatter):
    """Log records as one line each, without tracebacks (`--verbose` shows them)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname.lower()}: {record.getMessage()}"
        return line + " " + _("(run with --verbose for details)") if record.exc_info else line


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The CLI's log output on stderr; each `main` call installs its own (the stderr of that call)."""


def _configure_logging(verbose: bool) -> None:
    """Errors as one line on stderr; with --verbose, info and warnings too, with tracebacks. The printed results
    already say what each sync did, so its warnings stay out of the way by default. Lines are bounded and repeats
    counted (finance.logs), so a long-running `worker` cannot fill a disk with one failure said over and over."""
    logger = logging.getLogger("finance")
    for old in [h for h in logger.handlers if isinstance(h, _CliHandler)]:
        logger.removeHandler(old)
    handler = _CliHandler(sys.stderr)
    handler.setLevel(logging.INFO if verbose else logging.ERROR)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if verbose else _OneLine())
    handler.addFilter(BoundedLines())
    logger.setLevel(logging.INFO if verbose else logging.NOTSET)
    logger.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command in the language of FINANCE_LANG (else LANG; English when neither is one the app has)."""
    with using(os.environ.get("FINANCE_LANG") or os.environ.get("LANG") or "en"):
        return _run(argv)


def _run(argv: Sequence[str] | None) -> int:
    """Run a command; a store, key or provider problem is one line on stderr saying what to do (no traceback)."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except (StoreError, SecretError, control.ControlError) as exc:
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return 2
    except ProviderError as exc:
        print(_("error: {message}").format(message=exc.message), file=sys.stderr)
        return 1
    except (BadFile, EditError) as exc:
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return 1
    except Exception as exc:  # a store failing under a command (a read, a write): say so; anything else is a bug
        problem = store_error(exc)
        if problem is None:
            raise
        print(_("error: {message}").format(message=problem.message), file=sys.stderr)
        return 2
