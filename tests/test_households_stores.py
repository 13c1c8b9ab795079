"""Households' stores (issue 15): settings scoped to a household, each household's DuckDB file and folder, the
directory that routes webhooks and scheduled syncs, and the analysts' tools per household."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from finance.config import load_settings
from finance.store.schema import LOCAL_HOUSEHOLD


def _settings(tmp_path: Path, **env: str):
    return load_settings({"FINANCE_DATA_DIR": str(tmp_path), **env}, secrets_file=tmp_path / "none.toml")


def test_settings_default_to_the_local_household_and_its_store(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.household == LOCAL_HOUSEHOLD
    assert settings.for_household(LOCAL_HOUSEHOLD) is settings
    assert settings.household_dir == tmp_path


def test_a_household_on_duckdb_has_its_own_file_and_private_folder(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    other = settings.for_household("b-2")
    assert other.household == "b-2"
    assert other.database_url == f"duckdb:///{tmp_path / 'households' / 'b-2' / 'finance.duckdb'}"
    assert other.data_dir == settings.data_dir  # the key file and the emulators' state stay shared
    folder = other.household_dir
    assert folder == tmp_path / "households" / "b-2"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert other.for_household(LOCAL_HOUSEHOLD) == settings
    assert other.for_household("c").database_url.endswith("/households/c/finance.duckdb")


def test_a_custom_duckdb_file_keeps_its_households_beside_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, FINANCE_DATABASE_URL=f"duckdb:///{tmp_path / 'db' / 'money.duckdb'}")
    expected = tmp_path / "db" / "households" / "b" / "money.duckdb"
    assert settings.for_household("b").database_url == f"duckdb:///{expected}"


def test_a_household_on_postgresql_shares_the_database(tmp_path: Path) -> None:
    url = "postgresql+psycopg://finance@localhost/finance"
    settings = _settings(tmp_path, FINANCE_DATABASE_URL=url)
    assert settings.for_household("b").database_url == url
    assert settings.for_household("b") != settings  # its own shared_services


@pytest.mark.parametrize("bad", ["", "../local", "B", "a/b", "a b", "x" * 41, "..", "a\n", "é"])
def test_a_household_id_never_names_a_path(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="household id"):
        _settings(tmp_path).for_household(bad)
