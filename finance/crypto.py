"""Provider secrets (access tokens) encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key comes from FINANCE_ENCRYPTION_KEY or, on first run, is generated into a file under the data
folder readable by its owner only (a key file others can read is refused). Losing the key means reconnecting the
banks, nothing worse. `python -m finance keys rotate` (finance.cli_keys) replaces it: the new key is staged in
`secret.key.new`, the tokens re-encrypted in one transaction, then the files renamed (the old key kept in
`secret.key.old` until it is retired).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from finance.i18n import _
from finance.private_files import fsync_path, private_dir, write_private

KEY_FILE_NAME = "secret.key"
NEW_SUFFIX = ".new"
OLD_SUFFIX = ".old"


class SecretError(RuntimeError):
    """A stored secret cannot be decrypted (the key changed or the value was tampered with)."""


class SecretBox:
    def __init__(self, key: bytes | str) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise SecretError("FINANCE_ENCRYPTION_KEY is not a valid key; create one with "
                              "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key()"
                              ".decode())'`.") from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretError("A stored bank token cannot be decrypted: the encryption key changed. Reconnect "
                              "the bank, or restore the previous key.") from exc

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"


def key_files(data_dir: Path) -> tuple[Path, Path, Path]:
    """The key file under data_dir, and beside it the staged key of a rotation and the previous key it keeps."""
    path = data_dir / KEY_FILE_NAME
    return path, path.with_name(KEY_FILE_NAME + NEW_SUFFIX), path.with_name(KEY_FILE_NAME + OLD_SUFFIX)


def load_or_create_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, else the key file under data_dir, created (mode 0600, in a 0700 folder) when missing.

    A key file that cannot be read, others can read, or does not hold a key raises SecretError naming the file (not
    the environment variable, which was not used); so does a rotation that was interrupted (it must be finished
    before the key is known)."""
    if configured:
        return configured.encode()
    path, staged, _old = key_files(data_dir)
    if staged.exists():
        raise SecretError(_("A key rotation was interrupted ({path} exists), so which key the bank tokens use is not "
                            "settled yet. Run `python -m finance keys rotate` to finish it.").format(path=staged))
    if path.exists():
        return read_key_file(path)
    try:
        private_dir(data_dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return read_key_file(path)
    except OSError as exc:
        raise SecretError(f"The encryption key file {path} cannot be created ({exc.strerror or type(exc).__name__}). "
                          "Make its folder writable by the app, or set FINANCE_ENCRYPTION_KEY.") from exc
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)  # whatever the umask
        fh.write(key)
    return key


def read_key_file(path: Path) -> bytes:
    """The key in `path`, checked; what is wrong with the file otherwise, and what to do (the key is never shown).
    A key file that other users can read is refused before it is read: the key may already have been copied."""
    restore = ("Restore the file from a backup (or set FINANCE_ENCRYPTION_KEY to the key it held); without it the "
               "stored bank tokens cannot be decrypted, and the banks must be reconnected.")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if os.name == "posix" and path.is_file() and mode & 0o077:
        raise SecretError(_("The encryption key file {path} can be read by other users (mode {mode}), so the app "
                            "does not use it. Run `chmod 600 {path}`, and rotate the key if someone may have copied "
                            "it.").format(path=path, mode=f"{mode & 0o777:o}"))
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        problem = "it is a folder" if isinstance(exc, IsADirectoryError) else exc.strerror or type(exc).__name__
        raise SecretError(f"The encryption key file {path} cannot be read ({problem}). Check that it is a file the "
                          f"app can read. {restore}") from exc
    try:
        Fernet(key)
    except ValueError as exc:
        raise SecretError(f"The encryption key file {path} does not hold a valid key (it is damaged or was "
                          f"overwritten). {restore}") from exc
    return key


def stage_new_key(data_dir: Path) -> bytes:
    """A new key, written to disk (0600, synced) as the staged key of a rotation before any token uses it."""
    key = Fernet.generate_key()
    write_private(key_files(data_dir)[1], key, durable=True)
    return key


def promote_staged_key(data_dir: Path) -> None:
    """After the tokens were re-encrypted: the current key becomes the old one and the staged key the current one.
    Each step is a rename, so a crash leaves files `python -m finance keys rotate` finishes from."""
    path, staged, old = key_files(data_dir)
    if path.exists():
        os.replace(path, old)
    os.replace(staged, path)
    fsync_path(data_dir)
