"""Provider secrets (access tokens) encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key comes from FINANCE_ENCRYPTION_KEY or, on first run, is generated into a file under the data
folder readable by its owner only. Losing the key means reconnecting the banks, nothing worse.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE_NAME = "secret.key"


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


def load_or_create_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, else the key file under data_dir, created (mode 0600) when missing.

    A key file that cannot be read, or does not hold a key, raises SecretError naming the file (not the environment
    variable, which was not used)."""
    if configured:
        return configured.encode()
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return _read_key_file(path)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _read_key_file(path)
    except OSError as exc:
        raise SecretError(f"The encryption key file {path} cannot be created ({exc.strerror or type(exc).__name__}). "
                          "Make its folder writable by the app, or set FINANCE_ENCRYPTION_KEY.") from exc
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def _read_key_file(path: Path) -> bytes:
    """The key in `path`, checked; what is wrong with the file otherwise, and what to do (the key is never shown)."""
    restore = ("Restore the file from a backup (or set FINANCE_ENCRYPTION_KEY to the key it held); without it the "
               "stored bank tokens cannot be decrypted, and the banks must be reconnected.")
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
