"""The page gate without sign-in (loopback only, or a loud override) and the owners' Members and Audit pages under
AppTest (the member is set in the session as the gate would; sign-in itself is tested in tests/browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from finance.households import Member, Role
from finance.ui.auth import MEMBER_KEY, is_loopback

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("FINANCE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FINANCE_ALLOW_UNAUTHENTICATED_REMOTE", raising=False)


def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback(None)
    assert not is_loopback("192.168.1.5")


@pytest.fixture
def public_address():
    """Streamlit told to listen on every interface (the repository's config.toml says 127.0.0.1)."""
    from streamlit import config

    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", before)


def test_without_sign_in_every_page_refuses_a_public_address(public_address):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert "has no sign-in" in at.error[0].value
    assert not at.title  # no page ran


def test_the_override_serves_with_a_warning(public_address, monkeypatch):
    monkeypatch.setenv("FINANCE_ALLOW_UNAUTHENTICATED_REMOTE", "true")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert "FINANCE_ALLOW_UNAUTHENTICATED_REMOTE" in at.warning[0].value
    assert at.title[0].value == "Overview"


def owner_page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    at.session_state[MEMBER_KEY] = Member("alice@example.com", "local", Role.OWNER)
    return at


def test_members_page_invites_and_refuses_to_remove_the_last_owner():
    at = owner_page("pages/members.py")
    at.run()
    at.text_input(key="members_email").input("grandma@example.com")
    at.selectbox(key="members_role").select("viewer")
    at.button[0].click()  # the form's Invite
    at.run()
    assert not at.exception
    assert "Invited grandma@example.com" in at.success[0].value.replace("\\", "").replace("\u2060", "")  # literal
    assert "grandma@example.com" in at.dataframe[0].value.iloc[:, 0].tolist()


def test_a_viewer_is_refused_the_owners_pages():
    for path in ("pages/members.py", "pages/audit.py"):
        at = AppTest.from_file(str(ROOT / path), default_timeout=60)
        at.session_state[MEMBER_KEY] = Member("bob@example.com", "local", Role.VIEWER)
        at.run()
        assert at.exception and "Viewer" in at.exception[0].value


def test_audit_page_shows_the_household_log_literally():
    at = owner_page("pages/members.py")
    at.run()
    at.text_input(key="members_email").input("carol@example.com")
    at.button[0].click()
    at.run()
    audit = owner_page("pages/audit.py")
    audit.run()
    assert not audit.exception
    log = audit.dataframe[0].value
    assert ("alice@example.com", "invite", "carol@example.com") in set(zip(*(log.iloc[:, i] for i in (1, 2, 3)),
                                                                           strict=True))
