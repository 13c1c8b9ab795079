"""The one-click sandbox demo (finance/demo.py) and the connect sequence it shares with the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from finance.config import load_settings
from finance.demo import ConnectFailed, DemoUnavailable, connect_bank, demo_available, run_demo
from finance.providers import registry
from finance.services import Services, open_services


def counts(svc: Services) -> dict[str, int]:
    with svc.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                for t in ("connections", "accounts", "transactions", "sync_runs")}


@pytest.fixture
def svc(offline: Path):
    services = open_services(load_settings())
    yield services
    services.engine.dispose()


def test_demo_connects_and_syncs_a_pluggy_and_a_plaid_sandbox_bank(svc: Services):
    progress: list[tuple[str, float]] = []
    results = run_demo(svc, lambda label, fraction: progress.append((label, fraction)))

    assert [r.outcome for r in results] == ["success", "success"]
    assert results[0].message.startswith("Pluggy Bank connected. Synced 2 accounts")
    assert results[1].message.startswith("First Platypus Bank connected. Synced")
    with svc.engine.connect() as conn:
        providers = conn.execute(sa.text("SELECT provider, institution_id, is_sandbox, status FROM connections "
                                         "ORDER BY created_at")).all()
        currencies = dict(conn.execute(sa.text("SELECT currency, COUNT(*) FROM transactions GROUP BY 1")).all())
    assert [tuple(p) for p in providers] == [("pluggy", "0", True, "active"), ("plaid", "ins_109508", True, "active")]
    assert currencies["BRL"] > 0 and currencies["USD"] > 0
    fractions = [f for _, f in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and all(0 <= f <= 1 for f in fractions)
    assert any("Syncing First Platypus Bank" in label for label, _ in progress)


def test_a_second_demo_says_already_connected_and_adds_nothing(svc: Services):
    run_demo(svc)
    before = counts(svc)

    again = run_demo(svc)

    assert [r.outcome for r in again] == ["skipped", "skipped"]
    assert "Pluggy Bank is already connected" in again[0].message
    assert "First Platypus Bank is already connected" in again[1].message
    assert counts(svc) == before


def test_one_bank_failing_does_not_stop_the_other(svc: Services):
    registry.emulator("pluggy", svc.settings).faults.add("server_error", path="/items", times=-1)

    results = run_demo(svc)

    assert results[0].outcome == "failed" and results[0].message.startswith("Pluggy Bank: ")
    assert results[1].outcome == "success"
    with svc.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT provider FROM connections")).scalars().all() == ["plaid"]


def test_the_demo_refuses_to_run_against_real_credentials(offline: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLAID_CLIENT_ID", "a-real-client")
    monkeypatch.setenv("PLAID_SECRET", "a-real-secret")
    services = open_services(load_settings())
    try:
        assert not demo_available(services)
        with pytest.raises(DemoUnavailable, match="real credentials"):
            run_demo(services)
        assert counts(services)["connections"] == 0
    finally:
        services.engine.dispose()


def test_connect_bank_answers_mfa_and_reports_a_refused_code(svc: Services):
    provider = svc.providers["pluggy"]
    asked: list[str] = []

    def ask(prompt) -> str:
        asked.append(prompt.label)
        return "123456"

    state = connect_bank(provider, "0", {"user": "user-ok-mfa", "password": "password-ok"}, ask_mfa=ask,
                         interval=0)
    assert state.status.value == "active" and len(asked) == 1

    with pytest.raises(ConnectFailed, match="code"):
        connect_bank(provider, "0", {"user": "user-ok-mfa", "password": "password-ok"},
                     ask_mfa=lambda _prompt: "000000", interval=0)


def test_connect_bank_reports_a_wrong_password(svc: Services):
    with pytest.raises(ConnectFailed, match="username or password"):
        connect_bank(svc.providers["pluggy"], "0", {"user": "user-ok", "password": "nope"}, interval=0)
