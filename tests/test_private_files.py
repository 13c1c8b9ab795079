"""Bank data and keys are their owner's only: folders 0700 and files 0600 whatever the umask (the store, its WAL,
the key file, the emulators' state); a key file others can read is refused with the fix."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from finance.crypto import SecretError, load_or_create_key
from finance.private_files import make_private, private_dir, write_private
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.store.db import create_engine
from tests.test_e2e_webhooks import wait_for
from tests.test_edge import Served, served  # noqa: F401  (served: the running app, a module fixture)

REPO = Path(__file__).resolve().parents[1]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(root: Path) -> dict[str, int]:
    """Every folder and file under root (root included), by path relative to root's parent."""
    found = {root.name: mode(root)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            found[str(path.relative_to(root.parent))] = mode(path)
    return found


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest usual umask (group and others may read), as a careless login shell or service manager sets."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_folders_and_files_are_private_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    folder = private_dir(tmp_path / "a" / "b")
    assert mode(tmp_path / "a") == mode(folder) == 0o700
    write_private(folder / "state.json", b"{}")
    assert mode(folder / "state.json") == 0o600 and (folder / "state.json").read_bytes() == b"{}"
    assert [p.name for p in folder.iterdir()] == ["state.json"]  # no temporary file left
    loose = tmp_path / "loose"
    loose.write_bytes(b"x")
    assert mode(loose) == 0o644
    make_private(loose)
    assert mode(loose) == 0o600
    loose.chmod(0o444)  # read-only on purpose: stays read-only, for its owner only
    make_private(loose)
    assert mode(loose) == 0o400
    make_private(tmp_path / "missing")  # nothing to do


def test_the_store_file_is_private(tmp_path: Path, open_umask: None) -> None:
    engine = create_engine(f"duckdb:///{tmp_path / 'data' / 'finance.duckdb'}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (a INTEGER)"))
    finally:
        engine.dispose()
    assert mode(tmp_path / "data") == 0o700 and mode(tmp_path / "data" / "finance.duckdb") == 0o600


def test_the_key_file_is_created_private(tmp_path: Path) -> None:
    previous = os.umask(0)  # even with no umask at all
    try:
        load_or_create_key(None, tmp_path / "data")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "data") == 0o700 and mode(tmp_path / "data" / "secret.key") == 0o600


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused_with_the_fix(tmp_path: Path, loose: int) -> None:
    key = load_or_create_key(None, tmp_path)
    path = tmp_path / "secret.key"
    path.chmod(loose)
    with pytest.raises(SecretError) as info:
        load_or_create_key(None, tmp_path)
    message = str(info.value)
    assert f"chmod 600 {path}" in message and str(path) in message and "\n" not in message
    assert key.decode() not in message
    path.chmod(0o600)
    assert load_or_create_key(None, tmp_path) == key


def test_the_cli_refuses_a_readable_key_file_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    load_or_create_key(None, data)
    (data / "secret.key").chmod(0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGGY_", "PLAID_", "FINANCE_"))}
    done = subprocess.run([sys.executable, "-m", "finance", "status"], cwd=REPO, capture_output=True, text=True,
                          env=env | {"FINANCE_DATA_DIR": str(data)}, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and f"chmod 600 {data / 'secret.key'}" in done.stderr


def test_the_emulator_state_is_private(tmp_path: Path, open_umask: None) -> None:
    state = tmp_path / "sandbox" / "pluggy.json"
    emulator = PluggyEmulator(state_path=state)
    emulator.advance(days=1)
    assert mode(tmp_path / "sandbox") == 0o700 and mode(state) == 0o600


def test_everything_a_real_sync_creates_is_private(tmp_path: Path) -> None:
    """`python -m finance connect`, `sync` and `export` started under a umask of 022, into a data folder that does
    not exist yet (nor its parent): every folder it creates is 0700, every file 0600 (the export too)."""
    data = tmp_path / "deep" / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGGY_", "PLAID_", "FINANCE_"))}
    env |= {"FINANCE_DATA_DIR": str(data), "FINANCE_SANDBOX_SETTLE_SECONDS": "0"}
    for command in (["connect", "--provider", "plaid", "--institution", "ins_109508", "--user", "user_good",
                     "--password", "pass_good"], ["sync"],
                    ["export", "transactions", "--output", str(tmp_path / "deep" / "transactions.csv")]):
        done = subprocess.run([sys.executable, "-m", "finance", *command], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=180, check=False, preexec_fn=lambda: os.umask(0o022))
        assert done.returncode == 0, done.stdout + done.stderr
    created = modes(tmp_path / "deep")
    for name in ("deep/data/finance.duckdb", "deep/data/secret.key", "deep/data/sandbox/plaid.json",
                 "deep/transactions.csv"):
        assert name in created, sorted(created)
    loose = {name: oct(m) for name, m in created.items()
             if m != (0o700 if (tmp_path / name).is_dir() else 0o600)}
    assert not loose, loose


def test_the_running_apps_files_are_private(served: Served) -> None:  # noqa: F811 - the imported fixture
    """While `streamlit run app.py` (started under umask 022) holds the store, its WAL — which DuckDB deletes and
    re-creates at every checkpoint, so only the process's umask can make it private — is 0600 like the rest."""
    wait_for("the store's WAL", lambda: (served.data / "finance.duckdb.wal").exists())
    created = modes(served.data)
    loose = {name: oct(m) for name, m in created.items()
             if m != (0o700 if (served.data.parent / name).is_dir() else 0o600)}
    assert not loose, loose
