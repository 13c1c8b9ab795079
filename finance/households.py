"""Who may sign in and what each person may do (issue 15): roles, permissions, the allow-list and the rule that says
which household a person lands in at sign-in. Pure rules: finance/store/households.py reads and writes the
directory, finance/ui/auth.py asks these rules.

- The first person to sign in owns the installation: they become the owner of the 'local' household (the data a single
  user had before sign-in was turned on).
- A person the owner of a household invited by e-mail joins that household with the invited role.
- Anyone else gets a new household of their own (owner), unless the allow-list (FINANCE_ALLOWED_EMAILS) turns them
  away. The allow-list also applies to the first person; an invitation is the owner's explicit word and passes it.
- Only an e-mail the identity provider says is verified counts (when it says anything about it).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum

from finance.errors import EditError
from finance.i18n import N_, _


class Role(StrEnum):
    """A member's role in their household."""

    OWNER = "owner"
    MEMBER = "member"
    VIEWER = "viewer"


ROLE_NAMES = {Role.OWNER: N_("Owner"), Role.MEMBER: N_("Member"), Role.VIEWER: N_("Viewer")}


class Permission(Enum):
    """What a page action needs."""

    VIEW = "view"  # see the household's figures
    EDIT = "edit"  # categories, notes, deletions, rules, budgets, rates, recurring choices, alert settings, imports
    CONNECT = "connect"  # connect, reconnect, sync or disconnect a bank
    MANAGE = "manage"  # invite members, change roles, read the audit log


PERMISSIONS = {
    Role.OWNER: frozenset(Permission),
    Role.MEMBER: frozenset({Permission.VIEW, Permission.EDIT, Permission.CONNECT}),
    Role.VIEWER: frozenset({Permission.VIEW}),
}


class NotAllowed(EditError):
    """A person asked for something their role does not allow, or a change of the members the rules refuse; the
    message says which. Nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Member:
    """A person in the directory: their household and role; `joined_at` is None while the invitation is open."""

    email: str
    household_id: str
    role: Role
    invited_by: str | None = None
    invited_at: datetime | None = None
    joined_at: datetime | None = None

    def can(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]


def require(member: Member, permission: Permission) -> None:
    """The one guard every page action calls before it changes anything: raises NotAllowed when `member`'s role
    lacks `permission` (a viewer reaching an edit by any path is refused here, not only by a hidden button)."""
    if not member.can(permission):
        raise NotAllowed(_("Your role in this household ({role}) cannot do this. Ask the household's owner.")
                         .format(role=ROLE_NAMES[member.role]))


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(text: str) -> str:
    """The lower-case address, checked for a plausible shape; NotAllowed when it is not an e-mail address."""
    email = text.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise NotAllowed(_("“{email}” is not an e-mail address.").format(email=text.strip()))
    return email


def parse_allow_list(text: str | None) -> tuple[str, ...]:
    """FINANCE_ALLOWED_EMAILS: comma-separated addresses (alice@example.com) and domains (@family.example or
    family.example), lower-case; empty means everyone with a verified e-mail may sign in."""
    entries = []
    for part in (p.strip().lower() for p in (text or "").split(",")):
        if not part:
            continue
        if "@" not in part:
            part = "@" + part
        if part.count("@") != 1 or part.endswith("@") or "." not in part.split("@")[1] or " " in part:
            raise ValueError(f"FINANCE_ALLOWED_EMAILS holds {part!r}, which is neither an e-mail address "
                             "(alice@example.com) nor a domain (@family.example).")
        entries.append(part)
    return tuple(entries)


def allowed(email: str, allow_list: tuple[str, ...]) -> bool:
    """Whether the allow-list admits `email`: an exact address, or its exact domain (no subdomains)."""
    if not allow_list:
        return True
    address = email.strip().lower()
    domain = "@" + address.rpartition("@")[2]
    return address in allow_list or domain in allow_list


class Refusal(StrEnum):
    """Why a sign-in is turned away."""

    UNVERIFIED = "unverified"
    NOT_ALLOWED = "not_allowed"
    NO_EMAIL = "no_email"


REFUSALS = {
    Refusal.UNVERIFIED: N_("Your identity provider has not verified the e-mail address {email}. Verify it there, "
                           "then sign in again."),
    Refusal.NOT_ALLOWED: N_("{email} is not on this installation's list of who may sign in. Ask its owner to invite "
                            "you, or to add you to FINANCE_ALLOWED_EMAILS."),
    Refusal.NO_EMAIL: N_("Your identity provider did not say your e-mail address. Sign in with an account that has "
                         "one (the app asks for the “email” scope)."),
}


class Outcome(StrEnum):
    """What a sign-in does to the directory."""

    RETURNING = "returning"  # already a member
    JOIN = "join"  # an open invitation: join the inviting household
    CLAIM = "claim"  # the first person: owner of the 'local' household
    NEW_HOUSEHOLD = "new_household"  # owner of a new household of their own


@dataclass(frozen=True)
class Admission:
    """The decision for one sign-in: an outcome, or a refusal."""

    outcome: Outcome | None
    refusal: Refusal | None = None


def admit(email: str | None, *, verified: bool | None, known: Member | None, claimed: bool,
          allow_list: tuple[str, ...]) -> Admission:
    """Decide a sign-in. `verified` is the provider's email_verified claim (None when it sent none), `known` the
    person's directory row (a member or an open invitation), `claimed` whether the 'local' household has an owner."""
    if not email:
        return Admission(None, Refusal.NO_EMAIL)
    if verified is False:
        return Admission(None, Refusal.UNVERIFIED)
    if known is not None:
        return Admission(Outcome.RETURNING if known.joined_at else Outcome.JOIN)
    if not allowed(email, allow_list):
        return Admission(None, Refusal.NOT_ALLOWED)
    return Admission(Outcome.NEW_HOUSEHOLD if claimed else Outcome.CLAIM)


def new_household_id() -> str:
    """A random household id (never 'local'): safe as a folder name and a PostgreSQL setting."""
    return "h" + secrets.token_hex(8)


def check_invitation(owner: Member, email: str, role: Role, existing: Member | None) -> None:
    """Whether `owner` may invite `email` with `role`: NotAllowed (with why) otherwise. A person belongs to one
    household, so an address already in the directory cannot be invited again."""
    require(owner, Permission.MANAGE)
    if existing is not None:
        raise NotAllowed(_("{email} already belongs to a household or has an open invitation.").format(email=email))
    if role not in PERMISSIONS:
        raise NotAllowed(_("Unknown role."))


def check_change(owner: Member, target: Member, members: list[Member], new_role: Role | None) -> None:
    """Whether `owner` may give `target` the role `new_role` (None: remove them from the household): only within
    the owner's household, and never leaving the household without an owner."""
    require(owner, Permission.MANAGE)
    if target.household_id != owner.household_id:
        raise NotAllowed(_("{email} is not in your household.").format(email=target.email))
    owners = [m for m in members if m.role == Role.OWNER and m.joined_at is not None and m.email != target.email]
    if target.role == Role.OWNER and new_role != Role.OWNER and not owners:
        raise NotAllowed(_("{email} is the household's last owner: make someone else an owner first.")
                         .format(email=target.email))
