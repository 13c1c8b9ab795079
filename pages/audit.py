"""Audit log (owners only): who did what and when in this household — sign-ins, connects and disconnects, edits,
rules, exports, console queries, members — filterable. Every value is shown literally (a table, never Markdown)."""

from datetime import date, datetime, time

import pandas as pd
import streamlit as st

from finance.households import Permission
from finance.i18n import _
from finance.ui.auth import audit_actions, audit_entries, editor

st.title(_("Audit log"))
editor(Permission.MANAGE)  # the page itself refuses anyone but an owner, however it was reached

filters = st.columns(3)
actor = filters[0].text_input(_("Who (e-mail)"), key="audit_actor").strip().lower() or None
action = filters[1].selectbox(_("What"), ["", *audit_actions()], key="audit_action",
                              format_func=lambda a: a or _("Everything")) or None
since = filters[2].date_input(_("From"), value=None, key="audit_since", format=_("YYYY-MM-DD"))
rows = audit_entries(actor=actor, action=action,
                     since=datetime.combine(since, time.min).astimezone() if isinstance(since, date) else None)
if not rows:
    st.info(_("Nothing recorded yet for these filters."))
else:
    st.dataframe(pd.DataFrame({
        _("Date"): [r["occurred_at"] for r in rows],
        _("Who"): [r["actor"] for r in rows],
        _("What"): [r["action"] for r in rows],
        _("Object"): [r["object_id"] or "" for r in rows],
        _("Detail"): [r["detail"] or "" for r in rows],
    }), hide_index=True, width="stretch", column_config={
        _("Date"): st.column_config.DatetimeColumn(_("Date"), format="YYYY-MM-DD HH:mm:ss")})
