"""Members (owners only): who is in the household and with which role; invite by e-mail, change a role, remove a
member or cancel an invitation. The household never loses its last owner."""

import pandas as pd
import streamlit as st

from finance.households import ROLE_NAMES, NotAllowed, Permission, Role
from finance.i18n import _, format_timestamp
from finance.ui.auth import change_role, current_member, editor, household_members, invite, remove_member
from finance.ui.widgets import flash, show_flash

PAGE = "members"
st.title(_("Members"))
editor(Permission.MANAGE)  # the page itself refuses anyone but an owner, however it was reached
me = current_member()


def act(action, *args) -> None:
    """A button callback: one change of the members, reported; a refusal says why."""
    try:
        done = action(*args)
    except NotAllowed as exc:
        flash(PAGE, "error", exc.message)
        return
    flash(PAGE, "success", {invite: _("Invited {email}: they join when they first sign in."),
                            change_role: _("{email} is now {role}."),
                            remove_member: _("{email} is no longer in the household.")}[action]
          .format(email=done.email, role=ROLE_NAMES[done.role]))


def send_invitation() -> None:
    act(invite, st.session_state["members_email"], Role(st.session_state["members_role"]))
    st.session_state["members_email"] = ""


show_flash(PAGE)
st.caption(_("A person you invite signs in with that e-mail address and joins this household. Owners manage "
             "members and read the audit log; members see and change everything else; viewers only see."))
members = household_members()
st.dataframe(pd.DataFrame({
    _("E-mail"): [m.email for m in members],
    _("Role"): [str(ROLE_NAMES[m.role]) for m in members],
    _("Status"): [_("Joined {when}").format(when=format_timestamp(m.joined_at)) if m.joined_at else
                  _("Invited by {email}").format(email=m.invited_by or "") for m in members],
}), hide_index=True, width="stretch")

with st.form("members_invite", clear_on_submit=False, border=True):
    st.subheader(_("Invite someone"))
    st.text_input(_("E-mail address"), key="members_email", placeholder="name@example.com")
    st.selectbox(_("Role"), [r.value for r in Role], index=1, key="members_role",
                 format_func=lambda r: str(ROLE_NAMES[Role(r)]))
    st.form_submit_button(_("Invite"), type="primary", on_click=send_invitation)

st.subheader(_("Change or remove"))
for m in members:
    with st.container(border=True):
        who, role, remove = st.columns([3, 2, 1], vertical_alignment="bottom")
        who.text(m.email + ("" if m.joined_at else " · " + _("invitation open")))
        chosen = role.selectbox(_("Role"), [r.value for r in Role], index=list(Role).index(m.role),
                                key=f"members_role_{m.email}", format_func=lambda r: str(ROLE_NAMES[Role(r)]))
        if chosen != m.role.value:
            role.button(_("Save role"), key=f"members_save_{m.email}", on_click=act,
                        args=(change_role, m.email, Role(chosen)))
        remove.button(_("Remove") if m.joined_at else _("Cancel invitation"), key=f"members_remove_{m.email}",
                      on_click=act, args=(remove_member, m.email), disabled=m.email == me.email)
