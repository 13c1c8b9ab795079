"""`python -m finance keys rotate|retire|generate`: replace the key that encrypts the stored bank tokens.

With the key file (data/secret.key, the default) `rotate` stages a new key in secret.key.new (0600, on disk before
any token uses it), re-encrypts every token in one transaction, then renames: secret.key becomes secret.key.old
(kept until `retire`, for restoring a database backup taken before) and secret.key.new becomes secret.key. A
rotation killed at any point leaves either every token on the old key or every token on the new one; the app then
refuses to start until `rotate` runs again, which finds out which from the tokens themselves and finishes or
starts over.

With FINANCE_ENCRYPTION_KEY the key lives outside the data folder, so nothing is written to disk: the new key comes
in FINANCE_NEW_ENCRYPTION_KEY (`generate` prints one), and the person switches the variable afterwards. It is
never printed after the fact, so a lost terminal cannot lose the only copy of the key the tokens need.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.fernet import Fernet

from finance import cli_analyst
from finance.config import Settings, load_settings
from finance.crypto import SecretBox, SecretError, key_files, promote_staged_key, read_key_file, stage_new_key
from finance.i18n import _, ngettext
from finance.store.db import create_engine, init_schema
from finance.store.secrets import SecretStore


@contextmanager
def _store(settings: Settings, current: bytes) -> Iterator[SecretStore]:
    """The tokens of the store the settings name, sealed with `current`; refused while the app holds the store
    (its pages and syncs would keep using the old key)."""
    app = cli_analyst.app_holding_store(settings)
    if app is not None:
        raise SecretError(_("The app is running (pid {pid}) and uses the current key: stop it, then run this "
                            "command again.").format(pid=app.pid))
    engine = create_engine(settings.database_url)
    try:
        init_schema(engine, upgrade=False)
        yield SecretStore(engine, SecretBox(current))
    finally:
        engine.dispose()


def _tokens(count: int) -> str:
    return ngettext("{count} bank token", "{count} bank tokens", count).format(count=count)


def cmd_rotate(_args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.encryption_key:
        return _rotate_configured(settings)
    path, staged, old = key_files(settings.data_dir)
    if staged.exists():
        return _resume(settings)
    if old.exists():
        raise SecretError(_("The key an earlier rotation replaced is still kept in {path}. Retire it first with "
                            "`python -m finance keys retire` (once no database backup you may restore needs it), "
                            "then rotate.").format(path=old))
    if not path.exists():
        raise SecretError(_("There is no key file {path} yet, so there is nothing to rotate (the app creates one "
                            "when it first starts).").format(path=path))
    with _store(settings, read_key_file(path)) as store:
        new = stage_new_key(settings.data_dir)
        try:
            count = store.reseal_all(SecretBox(new))
        except BaseException:
            staged.unlink(missing_ok=True)  # no token uses it: the rotation did not happen
            raise
    promote_staged_key(settings.data_dir)
    print(_("Re-encrypted {tokens} with a new key, now in {path}. The old key is kept in {old} for restoring "
            "database backups taken before now; retire it with `python -m finance keys retire`.").format(
                tokens=_tokens(count), path=path, old=old))
    return 0


def _resume(settings: Settings) -> int:
    """Finish a rotation that was interrupted: promote the staged key when the tokens already use it, else drop
    it (the transaction never committed) and leave the current key in place."""
    path, staged, _old = key_files(settings.data_dir)
    new = read_key_file(staged)
    with _store(settings, new) as store:
        finished = store.readable_with(SecretBox(new))
    if finished or not path.exists():  # no current key: killed between the two renames, after the commit
        promote_staged_key(settings.data_dir)
        print(_("An interrupted key rotation is finished: every bank token uses the key in {path}.").format(
            path=path))
    else:
        staged.unlink()
        print(_("An interrupted key rotation is undone: every bank token still uses the key in {path}. Run "
                "`python -m finance keys rotate` again to rotate it.").format(path=path))
    return 0


def _rotate_configured(settings: Settings) -> int:
    """Rotation when the key comes from FINANCE_ENCRYPTION_KEY: the new one from FINANCE_NEW_ENCRYPTION_KEY."""
    if not settings.new_encryption_key:
        raise SecretError(_("FINANCE_ENCRYPTION_KEY is set, so the new key must come the same way (it is never "
                            "written to disk): create one with `python -m finance keys generate`, run "
                            "`python -m finance keys rotate` with FINANCE_NEW_ENCRYPTION_KEY set to it, then set "
                            "FINANCE_ENCRYPTION_KEY to it."))
    new = SecretBox(settings.new_encryption_key)
    if settings.new_encryption_key == settings.encryption_key:
        raise SecretError(_("FINANCE_NEW_ENCRYPTION_KEY is the current key; create a new one with "
                            "`python -m finance keys generate`."))
    with _store(settings, settings.encryption_key.encode()) as store:
        if not store.readable_with(SecretBox(settings.encryption_key)) and store.readable_with(new):
            print(_("The bank tokens already use FINANCE_NEW_ENCRYPTION_KEY: set FINANCE_ENCRYPTION_KEY to it, "
                    "remove FINANCE_NEW_ENCRYPTION_KEY and start the app."))
            return 0
        count = store.reseal_all(new)
    print(_("Re-encrypted {tokens} with the key in FINANCE_NEW_ENCRYPTION_KEY. Now set FINANCE_ENCRYPTION_KEY to "
            "that key, remove FINANCE_NEW_ENCRYPTION_KEY and start the app; keep the old key only as long as you "
            "may restore a database backup taken before now.").format(tokens=_tokens(count)))
    return 0


def cmd_retire(_args: argparse.Namespace) -> int:
    """Delete the key a rotation replaced, once every token is readable without it."""
    settings = load_settings()
    path, _staged, old = key_files(settings.data_dir)
    if not old.exists():
        print(_("There is no old key file ({path}) to retire.").format(path=old))
        return 0
    current = settings.encryption_key.encode() if settings.encryption_key else read_key_file(path)
    with _store(settings, current) as store:
        readable = store.readable_with(SecretBox(current))
    if not readable:
        raise SecretError(_("Some bank tokens cannot be decrypted with the current key, so {path} is kept. Finish "
                            "the rotation with `python -m finance keys rotate` first.").format(path=old))
    old.unlink()
    print(_("Retired the old key: {path} is deleted. Database backups taken before the rotation now need their "
            "banks reconnected (or that key, if you kept a copy with them).").format(path=old))
    return 0


def cmd_generate(_args: argparse.Namespace) -> int:
    """Print a new key for FINANCE_NEW_ENCRYPTION_KEY / FINANCE_ENCRYPTION_KEY (nothing is stored)."""
    print(Fernet.generate_key().decode())
    return 0


def add_commands(sub: Any) -> None:
    """Add `keys rotate|retire|generate` to the CLI's subcommands."""
    keys = sub.add_parser("keys", help=_("the key that encrypts the stored bank tokens")).add_subparsers(
        dest="action", required=True)
    keys.add_parser("rotate", help=_("re-encrypt every bank token with a new key, in one transaction")
                    ).set_defaults(func=cmd_rotate)
    keys.add_parser("retire", help=_("delete the old key a rotation kept (data/secret.key.old)")
                    ).set_defaults(func=cmd_retire)
    keys.add_parser("generate", help=_("print a new key (for FINANCE_NEW_ENCRYPTION_KEY)")
                    ).set_defaults(func=cmd_generate)
