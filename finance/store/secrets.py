"""Provider secrets kept in `connections.encrypted_secret`, sealed with the app's SecretBox."""

from __future__ import annotations

import sqlalchemy as sa

from finance.crypto import SecretBox, SecretError
from finance.i18n import _
from finance.model import stable_id
from finance.store.schema import connections


class SecretStore:
    def __init__(self, engine: sa.Engine, box: SecretBox) -> None:
        self._engine = engine
        self._box = box

    def seal(self, secret: str) -> str:
        return self._box.encrypt(secret)

    def get(self, provider: str, external_id: str) -> str:
        """The decrypted secret of a connection; SecretError when there is none or it cannot be read."""
        with self._engine.connect() as conn:
            sealed = conn.execute(sa.select(connections.c.encrypted_secret).where(
                connections.c.id == stable_id(provider, external_id))).scalar()
        if not sealed:
            raise SecretError(_("This connection has no stored access token; reconnect the bank."))
        return self._box.decrypt(sealed)
