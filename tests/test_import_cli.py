"""`python -m finance import`: a US CSV into a new manual account (guessed mapping, then the saved one), a dry run,
a re-import that adds nothing, possible duplicates never guessed, a bad file named by line with nothing stored,
the list, and undo."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from finance.cli import main
from finance.config import load_settings

pytestmark = pytest.mark.engines

US = 'Date,Description,Amount\n01/15/2024,"COFFEE, INC",-4.50\n01/16/2024,Paycheck,"1,200.00"\n'


def rows(offline: Path) -> int:
    engine = sa.create_engine(load_settings().database_url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT COUNT(*) FROM transactions")).scalar_one()
    engine.dispose()
    return int(count)


def account_id(out: str) -> str:
    return next(line.split()[-1].rstrip(".") for line in out.splitlines() if "Created the manual account" in line)


def test_import_into_a_new_account_then_again_then_undo(offline: Path, tmp_path: Path, capsys):
    path = tmp_path / "us.csv"
    path.write_text(US)
    assert main(["import", str(path), "--new-account", "Credit Union", "--currency", "usd", "--dry-run"]) == 0
    assert "2 rows would go into a new account 'Credit Union'" in capsys.readouterr().out
    assert main(["import", str(path), "--new-account", "Credit Union", "--currency", "usd"]) == 0
    out = capsys.readouterr().out
    account = account_id(out)
    assert '"date_format": "%m/%d/%Y"' in out and '"decimal": "."' in out
    assert "Imported 2 of 2 rows" in out and rows(offline) == 2

    assert main(["import", str(path), "--account", account, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "saved for this account" in out and "0 new" in out and "2 imported before" in out

    # Another file with the same amount and day but another text: never guessed.
    other = tmp_path / "other.csv"
    other.write_text("Date,Description,Amount\n01/15/2024,SOMETHING ELSE,-4.50\n")
    assert main(["import", str(other), "--account", account]) == 1
    captured = capsys.readouterr()
    assert "1 possible duplicates" in captured.out and "--ambiguous keep" in captured.err and rows(offline) == 2
    assert main(["import", str(other), "--account", account, "--ambiguous", "skip"]) == 0
    assert "Nothing to import" in capsys.readouterr().out and rows(offline) == 2

    assert main(["import", "--list"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert "'us.csv' → Credit Union: 2 added" in line
    assert main(["import", "--undo", line.split()[0]]) == 0
    assert "2 rows removed" in capsys.readouterr().out and rows(offline) == 0


def test_a_bad_file_is_named_by_line_and_nothing_is_stored(offline: Path, tmp_path: Path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("Date,Description,Amount\n01/15/2024,A,-4.50\n02/30/2024,B,1.00\n")
    assert main(["import", str(path), "--new-account", "X", "--currency", "USD"]) == 1
    err = capsys.readouterr().err
    assert "Line 3, column “Date”: '02/30/2024' is not a date" in err
    assert main(["import", str(path)]) == 2  # no account was made: none to choose from
    assert "the accounts are:\n" in capsys.readouterr().err
    assert rows(offline) == 0
