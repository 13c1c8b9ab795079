"""Provider secrets kept in `connections.encrypted_secret`, sealed with the app's SecretBox."""

from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa

from finance.crypto import SecretBox, SecretError
from finance.i18n import _
from finance.model import stable_id
from finance.store.db import load_arrow, unload_arrow
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

    def _sealed(self, conn: sa.Connection) -> list[sa.Row[tuple[str, str]]]:
        return list(conn.execute(sa.select(connections.c.id, connections.c.encrypted_secret)
                                 .where(connections.c.encrypted_secret.is_not(None))
                                 .order_by(connections.c.id)))

    def readable_with(self, box: SecretBox) -> bool:
        """Every stored secret decrypts with `box` (true of a store with none)."""
        with self._engine.connect() as conn:
            rows = self._sealed(conn)
        try:
            for row in rows:
                box.decrypt(row.encrypted_secret)
        except SecretError:
            return False
        return True

    def reseal_all(self, new: SecretBox) -> int:
        """Re-encrypt every stored secret with `new` in one transaction: afterwards every secret uses the new key, or,
        when anything fails (a secret the current key cannot decrypt, the store, the process), none does. From then
        on this store seals with `new`. Returns how many secrets were re-encrypted."""
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # no connection is added or resealed by another process meanwhile
                conn.exec_driver_sql("LOCK TABLE connections IN EXCLUSIVE MODE")
            rows = self._sealed(conn)
            resealed = []
            for row in rows:
                try:
                    plain = self._box.decrypt(row.encrypted_secret)
                except SecretError:
                    raise SecretError(_("The access token of connection {connection} cannot be decrypted with the "
                                        "current key, so no token was re-encrypted. Reconnect or disconnect that "
                                        "bank, then rotate again.").format(connection=row.id)) from None
                resealed.append({"row_id": row.id, "sealed": new.encrypt(plain)})
            if resealed:  # one UPDATE from the rows loaded in bulk (per-row updates take ~7 ms each on DuckDB)
                load_arrow(conn, "resealed_secrets", pa.Table.from_pylist(resealed))
                try:
                    conn.execute(sa.text("UPDATE connections SET encrypted_secret = r.sealed FROM resealed_secrets r "
                                         "WHERE connections.id = r.row_id"))
                finally:
                    unload_arrow(conn, "resealed_secrets")
        self._box = new
        return len(rows)
