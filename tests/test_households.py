"""The households' rules (finance/households.py) and the directory's SQL (finance/store/households.py): the
allow-list, the first owner, invitations, roles, and never a household without an owner."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from finance.config import load_sign_in_settings
from finance.households import (
    Member,
    NotAllowed,
    Outcome,
    Permission,
    Refusal,
    Role,
    admit,
    allowed,
    parse_allow_list,
    require,
)
from finance.store import households as directory
from finance.store.db import create_engine, init_schema

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"duckdb:///{tmp_path / 'finance.duckdb'}")
    init_schema(engine)
    yield engine
    engine.dispose()


def test_allow_list_takes_addresses_and_whole_domains_only():
    allow = parse_allow_list(" Alice@Example.com, @family.example , friends.example")
    assert allow == ("alice@example.com", "@family.example", "@friends.example")
    assert allowed("ALICE@example.com", allow)
    assert allowed("bob@family.example", allow) and allowed("carol@friends.example", allow)
    assert not allowed("bob@example.com", allow)
    assert not allowed("eve@evil.family.example", allow)  # no subdomains
    assert not allowed("eve@family.example.evil.com", allow)
    assert allowed("anyone@anywhere.example", ())  # no list: everyone verified


@pytest.mark.parametrize("bad", ["not an address", "@", "alice@", "a@b@c.example"])
def test_a_malformed_allow_list_is_refused_with_the_setting_named(bad):
    with pytest.raises(ValueError, match="FINANCE_ALLOWED_EMAILS"):
        parse_allow_list(bad)


def test_sign_in_settings_come_from_the_environment(tmp_path):
    settings = load_sign_in_settings({"FINANCE_ALLOWED_EMAILS": "@family.example",
                                      "FINANCE_ALLOW_UNAUTHENTICATED_REMOTE": "true"}, tmp_path / "none.toml")
    assert settings.allowed_emails == ("@family.example",) and settings.allow_unauthenticated_remote
    assert not load_sign_in_settings({}, tmp_path / "none.toml").allow_unauthenticated_remote
    with pytest.raises(ValueError, match="FINANCE_ALLOW_UNAUTHENTICATED_REMOTE"):
        load_sign_in_settings({"FINANCE_ALLOW_UNAUTHENTICATED_REMOTE": "maybe"}, tmp_path / "none.toml")


def test_admission_rules():
    invited = Member("bob@example.com", "local", Role.VIEWER)
    joined = Member("bob@example.com", "local", Role.VIEWER, joined_at=NOW)
    kw = {"claimed": True, "allow_list": ("@family.example",)}
    assert admit(None, verified=True, known=None, **kw).refusal is Refusal.NO_EMAIL
    assert admit("bob@example.com", verified=False, known=invited, **kw).refusal is Refusal.UNVERIFIED
    assert admit("bob@example.com", verified=True, known=invited, **kw).outcome is Outcome.JOIN  # invitation passes
    assert admit("bob@example.com", verified=None, known=joined, **kw).outcome is Outcome.RETURNING
    assert admit("eve@example.com", verified=True, known=None, **kw).refusal is Refusal.NOT_ALLOWED
    assert admit("eve@example.com", verified=True, known=None, claimed=False,
                 allow_list=("@family.example",)).refusal is Refusal.NOT_ALLOWED  # the first person too
    assert admit("ann@family.example", verified=True, known=None, **kw).outcome is Outcome.NEW_HOUSEHOLD
    assert admit("ann@family.example", verified=True, known=None, claimed=False,
                 allow_list=()).outcome is Outcome.CLAIM


def test_roles_and_the_guard():
    owner, member, viewer = (Member("a@x.example", "local", r) for r in Role)
    assert all(owner.can(p) for p in Permission)
    assert member.can(Permission.EDIT) and member.can(Permission.CONNECT) and not member.can(Permission.MANAGE)
    assert viewer.can(Permission.VIEW) and not viewer.can(Permission.EDIT) and not viewer.can(Permission.CONNECT)
    require(member, Permission.EDIT)
    with pytest.raises(NotAllowed, match="Viewer"):
        require(viewer, Permission.EDIT)


def test_first_person_owns_local_then_others_get_their_own_household(engine):
    first, alice = directory.sign_in(engine, "Alice@Example.com", verified=True, subject="iss alice", allow_list=(),
                                     now=NOW)
    assert first.outcome is Outcome.CLAIM
    assert alice == Member("alice@example.com", "local", Role.OWNER, None, NOW, NOW)
    again, same = directory.sign_in(engine, "alice@example.com", verified=True, subject="iss alice", allow_list=())
    assert again.outcome is Outcome.RETURNING and same is not None and same.household_id == "local"
    second, bob = directory.sign_in(engine, "bob@example.com", verified=True, subject="iss bob", allow_list=())
    assert second.outcome is Outcome.NEW_HOUSEHOLD and bob is not None
    assert bob.household_id != "local" and bob.role is Role.OWNER
    with engine.connect() as conn:
        households = dict(conn.execute(sa.text("SELECT id, created_by FROM households")).all())
    assert households == {"local": None, bob.household_id: "bob@example.com"}


def test_refused_sign_ins_leave_no_trace(engine):
    refused, nobody = directory.sign_in(engine, "eve@evil.example", verified=True, subject=None,
                                        allow_list=("@family.example",))
    assert refused.refusal is Refusal.NOT_ALLOWED and nobody is None
    unverified, nobody = directory.sign_in(engine, "ann@family.example", verified=False, subject=None,
                                           allow_list=("@family.example",))
    assert unverified.refusal is Refusal.UNVERIFIED and nobody is None
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM members")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM households")).scalar() == 0


def test_an_invited_person_joins_with_the_invited_role_despite_the_allow_list(engine):
    _, owner = directory.sign_in(engine, "alice@family.example", verified=True, subject=None,
                                 allow_list=("@family.example",))
    assert owner is not None
    directory.invite(engine, owner, " Grandma@Elsewhere.example ", Role.VIEWER, now=NOW)
    decision, grandma = directory.sign_in(engine, "grandma@elsewhere.example", verified=True, subject="s",
                                          allow_list=("@family.example",))
    assert decision.outcome is Outcome.JOIN
    assert grandma is not None and (grandma.household_id, grandma.role) == ("local", Role.VIEWER)
    assert grandma.invited_by == "alice@family.example" and grandma.joined_at is not None
    with pytest.raises(NotAllowed, match="already belongs"):
        directory.invite(engine, owner, "grandma@elsewhere.example", Role.MEMBER)
    with pytest.raises(NotAllowed, match="not an e-mail"):
        directory.invite(engine, owner, "grandma", Role.MEMBER)
    with pytest.raises(NotAllowed):  # only an owner invites
        directory.invite(engine, grandma, "cousin@family.example", Role.OWNER)


def test_roles_change_and_members_leave_but_never_the_last_owner(engine):
    _, owner = directory.sign_in(engine, "alice@example.com", verified=True, subject=None, allow_list=())
    assert owner is not None
    directory.invite(engine, owner, "bob@example.com", Role.MEMBER)
    directory.sign_in(engine, "bob@example.com", verified=True, subject=None, allow_list=())
    with pytest.raises(NotAllowed, match="last owner"):
        directory.change_role(engine, owner, "alice@example.com", Role.MEMBER)
    with pytest.raises(NotAllowed, match="last owner"):
        directory.remove(engine, owner, "alice@example.com")
    assert directory.change_role(engine, owner, "bob@example.com", Role.OWNER).role is Role.OWNER
    assert directory.change_role(engine, owner, "alice@example.com", Role.VIEWER).role is Role.VIEWER
    new_owner = directory.member(engine, "bob@example.com")
    assert new_owner is not None
    directory.invite(engine, new_owner, "carol@example.com", Role.VIEWER)
    assert directory.remove(engine, new_owner, "carol@example.com").joined_at is None  # an invitation cancelled
    directory.remove(engine, new_owner, "alice@example.com")
    assert [m.email for m in directory.members_of(engine, "local")] == ["bob@example.com"]


def test_an_owner_cannot_reach_another_household(engine):
    _, alice = directory.sign_in(engine, "alice@example.com", verified=True, subject=None, allow_list=())
    _, bob = directory.sign_in(engine, "bob@example.com", verified=True, subject=None, allow_list=())
    assert alice is not None and bob is not None
    with pytest.raises(NotAllowed, match="not in your household"):
        directory.remove(engine, bob, "alice@example.com")
    with pytest.raises(NotAllowed, match="not in your household"):
        directory.change_role(engine, bob, "alice@example.com", Role.VIEWER)
    assert directory.member(engine, "alice@example.com") == alice
