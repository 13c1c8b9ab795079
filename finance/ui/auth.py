"""Sign-in and who the session's person is (issue 15), run by app.py before any page.

- With Streamlit's `[auth]` section in .streamlit/secrets.toml: nobody sees a page before signing in through the
  identity provider (`st.login`); the directory (finance/store/households.py) then says which household they are in
  and with which role, and every page opens that household's store (`finance.ui.context.services`).
- Without it the app is one person's, on this computer: it serves pages only when Streamlit listens on a loopback
  address, unless FINANCE_ALLOW_UNAUTHENTICATED_REMOTE=true says otherwise (then a warning on every page).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import streamlit as st

from finance.config import load_settings, load_sign_in_settings
from finance.households import REFUSALS, ROLE_NAMES, Member, NotAllowed, Permission, Role, require
from finance.i18n import _
from finance.services import Services, shared_services
from finance.store import audit
from finance.store import households as directory
from finance.store.schema import LOCAL_HOUSEHOLD

LOCAL_USER = Member(email="user", household_id=LOCAL_HOUSEHOLD, role=Role.OWNER)
"""Who uses the app when sign-in is off: the single person on this computer, owner of the one household."""

MEMBER_KEY = "_finance_member"  # the signed-in member, for this session
PROVIDER_KEYS = {"client_id", "client_secret", "server_metadata_url"}
log = logging.getLogger("finance")
T = TypeVar("T")


def auth_section() -> Mapping[str, Any] | None:
    """Streamlit's `[auth]` section of the secrets, or None when sign-in is not configured."""
    try:
        section = st.secrets.get("auth")
    except FileNotFoundError:  # no secrets file at all
        return None
    return section if isinstance(section, Mapping) and section else None


def identity_providers(section: Mapping[str, Any]) -> list[str | None]:
    """The `[auth.<name>]` providers to offer, or [None] for the single provider written in `[auth]` itself."""
    named = [name for name, value in section.items() if isinstance(value, Mapping) and PROVIDER_KEYS & set(value)]
    return named or [None]  # type: ignore[return-value]


def is_loopback(address: str | None) -> bool:
    """Whether Streamlit's server.address keeps the app on this computer (unset means every interface)."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def current_member() -> Member:
    """The person this session runs for: the signed-in member (set by `gate`), or the local user without sign-in."""
    found = st.session_state.get(MEMBER_KEY)
    if isinstance(found, Member):
        return found
    if auth_section() is not None:  # nobody is signed in yet (the gate has not admitted anyone): no household at all
        raise NotAllowed(_("Sign in first."))
    return LOCAL_USER


def household_services(member: Member | None = None) -> Services:
    """The services of `member`'s household (default: the session's person)."""
    household = (member or current_member()).household_id
    return shared_services(load_settings().for_household(household))


def directory_engine() -> Any:
    """The engine of the store that holds the directory (the local household's)."""
    return shared_services(load_settings().local()).engine


def editor(permission: Permission = Permission.EDIT) -> str:
    """The guard every page action calls before it changes anything: who is acting, for the audit log; NotAllowed
    when their role may not (a viewer's action is refused here, whatever button reached it)."""
    member = current_member()
    require(member, permission)
    return member.email


def can(permission: Permission) -> bool:
    """Whether the session's person may do what `permission` covers (to hide or disable controls)."""
    return current_member().can(permission)


def record(action: str, object_id: str, detail: dict[str, Any] | None = None) -> None:
    """Add an event (an export, a console query, a connect...) to the household's audit log."""
    audit.log(household_services().engine, actor=current_member().email, action=action, object_id=object_id,
              detail=detail or {})


def _refuse_remote_without_sign_in() -> None:
    """Without sign-in, stop every page when the server listens beyond this computer (unless overridden, loudly)."""
    address = st.get_option("server.address")
    if is_loopback(address):
        return
    if load_sign_in_settings().allow_unauthenticated_remote:
        st.warning(_("Anyone who can reach this address sees every bank here: sign-in is off and "
                     "FINANCE_ALLOW_UNAUTHENTICATED_REMOTE is true. Configure sign-in (README, “Running it for a "
                     "household”)."), icon="🚨")
        return
    message = _("This app holds bank data and has no sign-in, so it serves only this computer, but it is "
                "listening on “{address}”. Either configure sign-in (an [auth] section in .streamlit/secrets.toml, "
                "see the README's “Running it for a household”), or set server.address to 127.0.0.1.").format(
        address=address or "0.0.0.0")
    _only(lambda: st.error(message, icon="🔒"), _("Sign-in needed"))


def _only(draw: Callable[[], None], title: str) -> NoReturn:
    """Serve `draw` as the app's one page, whatever the URL asks for, and stop: the navigation holds no other page,
    so no data page (nor Streamlit's list of the pages folder) is reachable."""
    st.navigation([st.Page(draw, title=title, url_path="welcome", default=True)], position="hidden").run()
    st.stop()


def _sign_in_page(section: Mapping[str, Any]) -> NoReturn:
    def draw() -> None:
        st.title(_("Open Finance dashboard"))
        st.write(_("Sign in to see your household's accounts."))
        for provider in identity_providers(section):
            label = _("Sign in with {provider}").format(provider=provider.capitalize()) if provider else _("Sign in")
            st.button(label, type="primary", icon="🔑", key=f"sign_in_{provider or 'default'}",
                      on_click=st.login, args=(provider,) if provider else ())
    _only(draw, _("Sign in"))


def _refused_page(message: str) -> NoReturn:
    def draw() -> None:
        st.title(_("You cannot use this installation"))
        st.error(message, icon="🚫")
        st.button(_("Sign out"), on_click=st.logout, key="sign_out_refused")
    _only(draw, _("Sign in"))


def _admit() -> Member:
    """The signed-in person's member row: admitted (and recorded) once per browser session, re-read on every run
    so a role change or a removal by the owner applies at once."""
    email = str(st.user.get("email") or "").strip().lower() or None
    verified = st.user.get("email_verified")
    verified = None if verified is None else verified in (True, "true", "True", 1)
    issuer, subject = st.user.get("iss"), st.user.get("sub")
    previous = st.session_state.get(MEMBER_KEY)
    if isinstance(previous, Member) and previous.email != email:
        for key in list(st.session_state):  # another person in this browser: nothing of the first one's stays
            del st.session_state[key]
    decision, member = directory.sign_in(directory_engine(), email, verified=verified,
                                         subject=f"{issuer} {subject}" if subject else None,
                                         allow_list=load_sign_in_settings().allowed_emails)
    if member is None:
        assert decision.refusal is not None
        log.warning("sign-in refused (%s)", decision.refusal.value)
        _refused_page(REFUSALS[decision.refusal].format(email=email or ""))
    if not isinstance(previous, Member) or previous.email != member.email:
        audit.log(household_services(member).engine, actor=member.email, action="sign_in", object_id=member.email,
                  detail={"outcome": decision.outcome.value if decision.outcome else None, "role": member.role.value})
    st.session_state[MEMBER_KEY] = member
    return member


def gate() -> Member:
    """Run before any page: the member this session runs for, or a page that stops the run (sign-in, refusal,
    or an app that must not serve beyond this computer without sign-in)."""
    section = auth_section()
    if section is None:
        _refuse_remote_without_sign_in()
        return LOCAL_USER
    if not st.user.get("is_logged_in"):
        _sign_in_page(section)
    member = _admit()
    with st.sidebar:
        st.caption(_("Signed in as {email} ({role})").format(email=member.email, role=ROLE_NAMES[member.role]))
        st.button(_("Sign out"), on_click=st.logout, key="sign_out", icon="🚪")
    return member


def startup_check() -> None:
    """At server start: log loudly when the app serves beyond this computer without sign-in."""
    from streamlit import config

    address = config.get_option("server.address")
    try:
        remote_ok = load_sign_in_settings().allow_unauthenticated_remote
    except ValueError as exc:
        log.error("%s", exc)
        return
    if auth_section() is None and not is_loopback(address):
        if remote_ok:
            log.warning("SIGN-IN IS OFF and the app listens on %r: anyone who can reach it sees every bank "
                        "(FINANCE_ALLOW_UNAUTHENTICATED_REMOTE=true)", address or "0.0.0.0")
        else:
            log.error("the app listens on %r without sign-in: every page refuses until [auth] is configured in "
                      ".streamlit/secrets.toml or server.address is 127.0.0.1", address or "0.0.0.0")


def household_members() -> list[Member]:
    """The owner's household: members and open invitations."""
    require(current_member(), Permission.MANAGE)
    return directory.members_of(directory_engine(), current_member().household_id)


def invite(email: str, role: Role) -> Member:
    """Invite `email` into the owner's household with `role` (recorded in the audit log)."""
    invited = directory.invite(directory_engine(), current_member(), email, role)
    record("invite", invited.email, {"role": invited.role.value})
    return invited


def change_role(email: str, role: Role) -> Member:
    """Give a member another role (recorded in the audit log)."""
    before = next((m for m in household_members() if m.email == email), None)
    changed = directory.change_role(directory_engine(), current_member(), email, role)
    record("change_role", changed.email, {"before": before.role.value if before else None,
                                          "after": changed.role.value})
    return changed


def remove_member(email: str) -> Member:
    """Remove a member or cancel an open invitation (recorded in the audit log)."""
    gone = directory.remove(directory_engine(), current_member(), email)
    record("remove_member" if gone.joined_at else "cancel_invitation", gone.email, {"role": gone.role.value})
    return gone


def audit_entries(*, actor: str | None = None, action: str | None = None, since: Any = None) -> list[dict[str, Any]]:
    """The household's audit log for its owner, newest first, filtered."""
    require(current_member(), Permission.MANAGE)
    return audit.entries(household_services().engine, actor=actor, action=action, since=since)


def audit_actions() -> list[str]:
    """The actions the household's audit log holds."""
    require(current_member(), Permission.MANAGE)
    return audit.actions(household_services().engine)


def audited(action: str, object_id: str, detail: dict[str, Any], build: Callable[[], T]) -> Callable[[], T]:
    """`build` (a download's deferred contents) that records `action` in the household's audit log when it runs:
    who and which store are taken now, as the download may be built outside the page's run."""
    actor, engine = current_member().email, household_services().engine

    def run() -> T:
        audit.log(engine, actor=actor, action=action, object_id=object_id, detail=detail)
        return build()
    return run
