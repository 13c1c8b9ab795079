"""`python -m finance keys rotate|retire|generate`: every stored bank token moves to a new key in one transaction;
a rotation killed at any point leaves the tokens all on one key and is finished (or undone) by running it again."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from finance import cli_analyst, cli_keys
from finance.cli import main
from finance.crypto import SecretBox, SecretError, load_or_create_key
from finance.store.schema import connections
from tests.conftest import store_engine

pytestmark = pytest.mark.engines


def sealed_tokens() -> list[str]:
    engine = store_engine()
    try:
        with engine.connect() as conn:
            return [row.encrypted_secret for row in conn.execute(
                sa.select(connections.c.encrypted_secret).where(connections.c.encrypted_secret.is_not(None)))]
    finally:
        engine.dispose()


def decrypts_with(key: bytes) -> bool:
    """Every stored token decrypts with `key`."""
    try:
        return all(Fernet(key).decrypt(token.encode()) for token in sealed_tokens())
    except InvalidToken:
        return False


@pytest.fixture
def two_banks(offline: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The store with two sandbox connections holding access tokens (two Plaid items: Pluggy keeps none), sealed
    with the key file's key."""
    for _ in range(2):
        assert main(["connect", "--provider", "plaid", "--institution", "ins_109508", "--user", "user_good",
                     "--password", "pass_good"]) == 0
    capsys.readouterr()
    assert len(sealed_tokens()) == 2
    return offline


def test_rotate_moves_every_token_to_a_new_key_and_keeps_the_old_until_retired(two_banks: Path, capsys):
    old_key = (two_banks / "secret.key").read_bytes()
    assert main(["keys", "rotate"]) == 0
    assert "Re-encrypted 2 bank tokens" in capsys.readouterr().out
    new_key = (two_banks / "secret.key").read_bytes()
    assert new_key != old_key and (two_banks / "secret.key.old").read_bytes() == old_key
    for name in ("secret.key", "secret.key.old"):
        assert stat.S_IMODE((two_banks / name).stat().st_mode) == 0o600
    assert not (two_banks / "secret.key.new").exists()
    assert decrypts_with(new_key) and not decrypts_with(old_key)  # the old key no longer decrypts any token

    assert main(["sync"]) == 0  # both banks sync with the new key
    out = capsys.readouterr().out
    assert out.count("Up to date") == 2, out

    assert main(["keys", "rotate"]) == 2  # the old key must be retired before the next rotation
    assert "keys retire" in capsys.readouterr().err
    assert main(["keys", "retire"]) == 0
    assert not (two_banks / "secret.key.old").exists()
    assert main(["keys", "rotate"]) == 0
    assert decrypts_with((two_banks / "secret.key").read_bytes())


@pytest.mark.parametrize("where", ["while re-encrypting", "after the UPDATE, before the commit"])
def test_a_failure_mid_way_leaves_every_token_on_the_old_key(two_banks: Path, monkeypatch, capsys, where: str):
    old_key = (two_banks / "secret.key").read_bytes()
    real_encrypt = SecretBox.encrypt
    calls: list[str] = []

    def encrypt_then_die(self: SecretBox, plaintext: str) -> str:
        calls.append(plaintext)
        if len(calls) == 2:  # the first token is already re-encrypted
            raise KeyboardInterrupt
        return real_encrypt(self, plaintext)

    def die_after_the_update(_conn: object, statement: object, *_args: object) -> None:
        if str(statement).startswith("UPDATE connections SET encrypted_secret"):
            calls.append("update")
            raise KeyboardInterrupt  # every row is updated in the open transaction

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        if where == "while re-encrypting":
            patched.setattr(SecretBox, "encrypt", encrypt_then_die)
        else:
            sa.event.listen(sa.Engine, "after_execute", die_after_the_update)
        try:
            main(["keys", "rotate"])
        finally:
            if sa.event.contains(sa.Engine, "after_execute", die_after_the_update):
                sa.event.remove(sa.Engine, "after_execute", die_after_the_update)
    assert len(calls) == (2 if where == "while re-encrypting" else 1)
    assert decrypts_with(old_key)  # all or none: none
    assert (two_banks / "secret.key").read_bytes() == old_key
    assert not (two_banks / "secret.key.new").exists() and not (two_banks / "secret.key.old").exists()
    assert main(["sync"]) == 0
    assert capsys.readouterr().out.count("Up to date") == 2


def test_killed_after_the_commit_the_next_rotate_finishes(two_banks: Path, monkeypatch, capsys):
    old_key = (two_banks / "secret.key").read_bytes()

    def killed(_data_dir: Path) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(cli_keys, "promote_staged_key", killed)
        main(["keys", "rotate"])
    staged = (two_banks / "secret.key.new").read_bytes()
    assert decrypts_with(staged) and not decrypts_with(old_key)
    with pytest.raises(SecretError, match="keys rotate"):  # the app does not start on the wrong key
        load_or_create_key(None, two_banks)
    assert main(["sync"]) == 2
    assert "interrupted" in capsys.readouterr().err

    assert main(["keys", "rotate"]) == 0
    assert "finished" in capsys.readouterr().out
    assert (two_banks / "secret.key").read_bytes() == staged
    assert (two_banks / "secret.key.old").read_bytes() == old_key
    assert main(["sync"]) == 0


def test_killed_between_the_renames_the_next_rotate_finishes(two_banks: Path, capsys):
    old_key = (two_banks / "secret.key").read_bytes()
    staged = cli_keys.stage_new_key(two_banks)
    engine = store_engine()
    try:
        with engine.begin() as conn:  # what the committed transaction did
            for row in conn.execute(sa.select(connections.c.id, connections.c.encrypted_secret)
                                    .where(connections.c.encrypted_secret.is_not(None))).all():
                plain = Fernet(old_key).decrypt(row.encrypted_secret.encode())
                conn.execute(connections.update().where(connections.c.id == row.id)
                             .values(encrypted_secret=Fernet(staged).encrypt(plain).decode()))
    finally:
        engine.dispose()
    (two_banks / "secret.key").rename(two_banks / "secret.key.old")  # the first rename, then killed
    assert main(["keys", "rotate"]) == 0
    assert (two_banks / "secret.key").read_bytes() == staged
    assert main(["sync"]) == 0
    assert capsys.readouterr().out.count("Up to date") == 2


def test_killed_before_the_commit_the_next_rotate_undoes(two_banks: Path, capsys):
    old_key = (two_banks / "secret.key").read_bytes()
    cli_keys.stage_new_key(two_banks)  # staged, then killed before any token moved
    assert main(["keys", "rotate"]) == 0
    assert "undone" in capsys.readouterr().out
    assert (two_banks / "secret.key").read_bytes() == old_key and not (two_banks / "secret.key.new").exists()
    assert main(["sync"]) == 0


def test_an_environment_key_is_rotated_without_writing_any_key(two_banks: Path, monkeypatch, capsys):
    old_key = (two_banks / "secret.key").read_bytes()
    (two_banks / "secret.key").unlink()
    monkeypatch.setenv("FINANCE_ENCRYPTION_KEY", old_key.decode())
    assert main(["keys", "rotate"]) == 2
    assert "keys generate" in capsys.readouterr().err
    assert main(["keys", "generate"]) == 0
    new_key = capsys.readouterr().out.strip()
    Fernet(new_key)  # a valid key

    monkeypatch.setenv("FINANCE_NEW_ENCRYPTION_KEY", new_key)
    assert main(["keys", "rotate"]) == 0
    out = capsys.readouterr().out
    assert "Re-encrypted 2 bank tokens" in out and new_key not in out
    assert not list(two_banks.glob("secret.key*"))
    assert decrypts_with(new_key.encode()) and not decrypts_with(old_key)
    assert main(["keys", "rotate"]) == 0  # run again before switching: says what is left to do
    assert "already use FINANCE_NEW_ENCRYPTION_KEY" in capsys.readouterr().out

    monkeypatch.delenv("FINANCE_NEW_ENCRYPTION_KEY")
    monkeypatch.setenv("FINANCE_ENCRYPTION_KEY", new_key)
    assert main(["sync"]) == 0
    assert capsys.readouterr().out.count("Up to date") == 2


def test_a_token_the_current_key_cannot_read_stops_the_rotation(two_banks: Path, capsys):
    old_key = (two_banks / "secret.key").read_bytes()
    engine = store_engine()
    try:
        with engine.begin() as conn:
            first = conn.execute(sa.select(connections.c.id).where(connections.c.encrypted_secret.is_not(None))
                                 .order_by(connections.c.id)).scalars().first()
            conn.execute(connections.update().where(connections.c.id == first).values(
                encrypted_secret=Fernet(Fernet.generate_key()).encrypt(b"other").decode()))
    finally:
        engine.dispose()
    assert main(["keys", "rotate"]) == 2
    err = capsys.readouterr().err
    assert first in err and "no token was re-encrypted" in err and "other" not in err
    assert (two_banks / "secret.key").read_bytes() == old_key and not (two_banks / "secret.key.new").exists()


def test_rotation_waits_for_the_app_to_stop(two_banks: Path, monkeypatch, capsys):
    """While the app holds the store it keeps the current key in memory: rotating under it would leave it sealing
    new tokens with a key that is about to be retired."""
    old_key = (two_banks / "secret.key").read_bytes()
    monkeypatch.setattr(cli_analyst, "app_holding_store", lambda _settings: SimpleNamespace(pid=4242))
    assert main(["keys", "rotate"]) == 2
    assert "The app is running (pid 4242)" in capsys.readouterr().err
    assert (two_banks / "secret.key").read_bytes() == old_key and not (two_banks / "secret.key.new").exists()
    assert decrypts_with(old_key)
