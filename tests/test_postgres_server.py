"""The tests' throwaway PostgreSQL server: it starts on loopback, hands out fresh databases, survives a stop and a
start, and a machine without PostgreSQL skips its tests, except under CI=true, where they fail."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests import postgres


def test_each_database_is_fresh_and_the_server_comes_back_after_a_stop(postgres_server):
    first, second = postgres_server(), postgres_server()
    assert first != second and first.startswith("postgresql+psycopg://") and "@127.0.0.1:" in first
    engine = sa.create_engine(first)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x int)"))
        postgres_server.stop()
        assert not postgres_server.running()
        with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        postgres_server.start()
        engine.dispose()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 0
    finally:
        engine.dispose()
    other = sa.create_engine(second)
    with other.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('t')")).scalar() is None
    other.dispose()


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_missing_binaries_skip_with_how_to_install_but_fail_under_ci(monkeypatch, ci, outcome):
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    monkeypatch.setenv("CI", ci)
    reason = postgres.server_available()
    assert reason is not None and "apt-get install postgresql" in reason
    with pytest.raises(outcome, match="apt-get install postgresql"):
        postgres.unavailable(reason)
