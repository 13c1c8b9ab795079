"""Provider secrets (Plaid access tokens) encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

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
    """The configured key, else the key file under data_dir, created (mode 0600) when missing."""
    if configured:
        return configured.encode()
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key
