"""The directory's households and members (issue 15): sign-in, invitations and role changes, each one database
transaction on the local household's store (where the directory lives). The rules they apply are finance.households.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from finance.households import (
    Admission,
    Member,
    NotAllowed,
    Outcome,
    Role,
    admit,
    check_change,
    check_invitation,
    new_household_id,
    normalize_email,
)
from finance.i18n import _
from finance.store.schema import LOCAL_HOUSEHOLD

_COLUMNS = "email, household_id, role, invited_by, invited_at, joined_at"


def _member(row: sa.Row | None) -> Member | None:
    if row is None:
        return None
    return Member(email=row.email, household_id=row.household_id, role=Role(row.role), invited_by=row.invited_by,
                  invited_at=row.invited_at, joined_at=row.joined_at)


def member(engine: sa.Engine, email: str) -> Member | None:
    """The directory row of `email` (a member, or an open invitation), or None."""
    with engine.connect() as conn:
        return _member(conn.execute(sa.text(f"SELECT {_COLUMNS} FROM members WHERE email = :e"),
                                    {"e": email.strip().lower()}).one_or_none())


def members_of(engine: sa.Engine, household: str) -> list[Member]:
    """The household's members and open invitations, owners first, then by address."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT {_COLUMNS} FROM members WHERE household_id = :h"),
                            {"h": household}).all()
    order = {Role.OWNER: 0, Role.MEMBER: 1, Role.VIEWER: 2}
    return sorted((m for m in map(_member, rows) if m is not None), key=lambda m: (order[m.role], m.email))


def sign_in(engine: sa.Engine, email: str | None, *, verified: bool | None, subject: str | None,
            allow_list: tuple[str, ...], now: datetime | None = None) -> tuple[Admission, Member | None]:
    """Admit one sign-in and record it in the directory, in one transaction: the first person claims the local
    household, an invited person joins, anyone else (the allow-list permitting) gets a household of their own.
    Returns the decision and the member (None when refused)."""
    moment = now or datetime.now(UTC)
    address = email.strip().lower() if email else None
    for attempt in range(2):  # two first sign-ins at once: the loser's households insert fails; decide again
        try:
            with engine.begin() as conn:
                known = _member(conn.execute(sa.text(f"SELECT {_COLUMNS} FROM members WHERE email = :e"),
                                             {"e": address}).one_or_none()) if address else None
                claimed = conn.execute(sa.text("SELECT 1 FROM households WHERE id = :h"),
                                       {"h": LOCAL_HOUSEHOLD}).first() is not None
                decision = admit(address, verified=verified, known=known, claimed=claimed, allow_list=allow_list)
                if decision.outcome is None or address is None:
                    return decision, None
                if decision.outcome is Outcome.RETURNING and known is not None:
                    return decision, known
                if decision.outcome is Outcome.JOIN and known is not None:
                    conn.execute(sa.text("UPDATE members SET joined_at = :t, subject = :s WHERE email = :e"),
                                 {"t": moment, "s": subject, "e": address})
                    return decision, Member(address, known.household_id, known.role, known.invited_by,
                                            known.invited_at, moment)
                household = LOCAL_HOUSEHOLD if decision.outcome is Outcome.CLAIM else new_household_id()
                conn.execute(sa.text("INSERT INTO households (id, name, created_at, created_by) "
                                     "VALUES (:id, :name, :t, :by)"),
                             {"id": household, "name": address, "t": moment,
                              "by": None if household == LOCAL_HOUSEHOLD else address})
                conn.execute(sa.text("INSERT INTO members (email, household_id, role, invited_by, invited_at, "
                                     "joined_at, subject) VALUES (:e, :h, :r, NULL, :t, :t, :s)"),
                             {"e": address, "h": household, "r": Role.OWNER.value, "t": moment, "s": subject})
                return decision, Member(address, household, Role.OWNER, None, moment, moment)
        except sa.exc.IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


def invite(engine: sa.Engine, owner: Member, email: str, role: Role, *, now: datetime | None = None) -> Member:
    """Invite `email` into the owner's household with `role`: they join at their first sign-in. NotAllowed when
    the rules refuse (see finance.households.check_invitation)."""
    address = normalize_email(email)
    moment = now or datetime.now(UTC)
    with engine.begin() as conn:
        existing = _member(conn.execute(sa.text(f"SELECT {_COLUMNS} FROM members WHERE email = :e"),
                                        {"e": address}).one_or_none())
        check_invitation(owner, address, Role(role), existing)
        conn.execute(sa.text("INSERT INTO members (email, household_id, role, invited_by, invited_at) "
                             "VALUES (:e, :h, :r, :by, :t)"),
                     {"e": address, "h": owner.household_id, "r": Role(role).value, "by": owner.email, "t": moment})
    return Member(address, owner.household_id, Role(role), owner.email, moment, None)


def _target(conn: sa.Connection, owner: Member, email: str) -> tuple[Member, list[Member]]:
    rows = conn.execute(sa.text(f"SELECT {_COLUMNS} FROM members WHERE household_id = :h"),
                        {"h": owner.household_id}).all()
    members = [m for m in map(_member, rows) if m is not None]
    target = next((m for m in members if m.email == email.strip().lower()), None)
    if target is None:
        raise NotAllowed(_("{email} is not in your household.").format(email=email))
    return target, members


def change_role(engine: sa.Engine, owner: Member, email: str, role: Role) -> Member:
    """Give a member of the owner's household another role (never leaving it without an owner)."""
    with engine.begin() as conn:
        target, members = _target(conn, owner, email)
        check_change(owner, target, members, Role(role))
        conn.execute(sa.text("UPDATE members SET role = :r WHERE email = :e AND household_id = :h"),
                     {"r": Role(role).value, "e": target.email, "h": owner.household_id})
    return Member(target.email, target.household_id, Role(role), target.invited_by, target.invited_at,
                  target.joined_at)


def remove(engine: sa.Engine, owner: Member, email: str) -> Member:
    """Remove a member from the owner's household, or cancel an open invitation (never the last owner). A removed
    person who signs in again is treated as new: a household of their own, if the allow-list admits them."""
    with engine.begin() as conn:
        target, members = _target(conn, owner, email)
        check_change(owner, target, members, None)
        conn.execute(sa.text("DELETE FROM members WHERE email = :e AND household_id = :h"),
                     {"e": target.email, "h": owner.household_id})
    return target
