"""Alerts: the notification list (newest first, unread marked) with mark read and mark all read, the per-kind
on/off settings and the large-transaction thresholds. Opening the page evaluates the alerts, as every sync does.

Alert texts hold bank text (merchants, descriptions, institution names): they are drawn with st.text, never as
Markdown or HTML."""

import streamlit as st

from finance.alerts import AlertSettingsError
from finance.households import NotAllowed
from finance.i18n import _, format_timestamp, ngettext
from finance.ui.auth import editor
from finance.ui.context import services
from finance.ui.widgets import flash, show_flash

PAGE = "alerts"
st.title(_("Alerts"))
svc = services()


def mark_read(key: str) -> None:
    try:
        flash(PAGE, "success", svc.alerts.mark_read(key, actor=editor()))
    except NotAllowed as exc:
        flash(PAGE, "error", exc.message)


def mark_all_read() -> None:
    try:
        flash(PAGE, "success", svc.alerts.mark_all_read(actor=editor()))
    except NotAllowed as exc:
        flash(PAGE, "error", exc.message)


run = svc.alerts.evaluate()
if run.raised:  # once more, so the navigation's unread count includes them
    flash(PAGE, "success", ngettext("{count} new alert.", "{count} new alerts.", run.raised).format(count=run.raised))
    st.rerun()
show_flash(PAGE)

unread = svc.alerts.unread_count()
top, button = st.columns([5, 1], vertical_alignment="center")
top.metric(_("Unread"), unread)
button.button(_("Mark all read"), key="alerts_mark_all", on_click=mark_all_read, disabled=not unread,
              width="stretch")
unread_only = st.toggle(_("Unread only"), key="alerts_unread_only")

listing = svc.alerts.list(unread_only=unread_only)
waiting = listing[listing["email_state"].eq("pending") & listing["email_error"].notna()]
if not waiting.empty:
    st.warning(ngettext("{count} alert could not be e-mailed yet; the app tries again every {minutes} minutes. The "
                        "mail server said:", "{count} alerts could not be e-mailed yet; the app tries again every "
                        "{minutes} minutes. The mail server said:", len(waiting)).format(
        count=len(waiting), minutes=int(svc.alerts.EMAIL_RETRY_AFTER.total_seconds() // 60)), icon="✉️")
    st.text(str(waiting.iloc[0]["email_error"]))
if listing.empty:
    st.info(_("No unread alerts.") if unread_only else
            _("No alerts yet. They appear here after a sync: a large transaction, a category over budget, a "
              "connection that needs reconnecting…"), icon="🔕")
for alert in listing.to_dict("records"):
    is_unread = alert["read_at"] is None or alert["read_at"] != alert["read_at"]
    with st.container(border=True):
        text, action = st.columns([6, 1], vertical_alignment="center")
        kind = svc.alerts.KINDS.get(alert["kind"], alert["kind"])
        text.caption(("🔵 " + _("Unread") + " · " if is_unread else "") + f"{kind} · " +
                     format_timestamp(alert["created_at"]))
        text.text(alert["title"])
        text.text(alert["detail"])
        if is_unread:
            action.button(_("Mark read"), key=f"alert_read_{alert['key']}", on_click=mark_read, args=(alert["key"],),
                          width="stretch")

with st.expander(_("Alert settings")), st.form("alert_settings"):
    current = svc.alerts.settings()
    st.write(_("Kinds of alert (off: none of that kind is raised or e-mailed)"))
    enabled = {kind: st.toggle(str(label), value=current.enabled(kind), key=f"alert_kind_{kind}")
               for kind, label in svc.alerts.KINDS.items()}
    st.write(_("A single expense at or over this amount is a large transaction"))
    typed = {currency: st.text_input(_("Threshold ({currency})").format(currency=currency),
                                     value=f"{current.threshold(currency):f}",
                                     key=f"alert_threshold_{currency}", max_chars=24)
             for currency in svc.alerts.currencies()}
    if st.form_submit_button(_("Save alert settings")):
        changed = {c: v for c, v in typed.items() if v.strip() != f"{current.threshold(c):f}"}
        try:
            flash(PAGE, "success", svc.alerts.save_settings(enabled, changed, actor=editor()))
            st.rerun()
        except (AlertSettingsError, NotAllowed) as exc:
            st.error(str(exc), icon="⚠️")
