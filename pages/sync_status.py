"""Sync status: a health strip per connection (with its consent state and next scheduled sync), background work
(queue, schedule, webhooks), the timeline of sync runs, and open errors with their fix."""

from datetime import UTC, datetime

import streamlit as st

from finance import health, jobs, worker
from finance.formatting import escape_markdown
from finance.i18n import _, format_short_day, format_timestamp, ngettext
from finance.ui import sandbox
from finance.ui.context import services

st.title(_("Sync status"))
svc = services()

data = svc.status.read()
recent = svc.events.recent(limit=50)

if data.connections.empty:
    st.info(_("No banks connected yet, so there is nothing to sync. Connect {bank} on Connections.").format(
        bank=sandbox.first_bank()))
    st.page_link("pages/connections.py", label=_("Connect a bank"), icon="🏦")
    st.stop()

now = datetime.now(UTC)
healths = health.health_by_connection(data, now)
background = worker.current()
state = background.snapshot() if background is not None else None
interval = state.interval if state is not None else svc.settings.sync_interval
if st.button(_("Refresh"), key="status_refresh", icon="🔄"):
    st.rerun()

st.subheader(_("Connections"))
rows = data.connections.to_dict("records")
runs_by_connection = {cid: group.to_dict("records") for cid, group in data.runs.groupby("connection_id")} \
    if not data.runs.empty else {}
for start in range(0, len(rows), 3):
    for column, row in zip(st.columns(3), rows[start:start + 3], strict=False):
        h = healths[row["id"]]
        lifecycle = health.lifecycle_state(row, runs_by_connection.get(row["id"], []), now)
        with column.container(border=True):
            institution = escape_markdown(str(row["institution_name"] or row["id"]))
            st.markdown(f"**{institution}** :{h.color}-badge[{h.level_label}] "
                        f":{health.LIFECYCLE_COLORS[lifecycle]}-badge[{health.LIFECYCLE_LABELS[lifecycle]}]")
            consent = row["consent_expires_at"]
            st.caption(f"{row['provider']} · " + ngettext("{count} account", "{count} accounts", row["accounts"])
                       .format(count=row["accounts"]) + " · " + _("last successful sync {when}").format(
                           when=format_timestamp(row["last_success_at"]))
                       + (" · " + _("consent until {day}").format(day=format_short_day(consent))
                          if consent is not None and consent == consent else ""))
            reason = escape_markdown(h.reason)
            st.markdown(reason if h.label == h.level_label else f"**{h.label}.** {reason}")
            if h.action:
                st.markdown(f"👉 {h.action}")
            next_run = state.next_runs.get(row["id"]) if state is not None else None
            own = state.intervals.get(row["id"], interval) if state is not None else interval  # provider's floor
            st.caption(health.schedule_line(row, own, now, next_run))

st.subheader(_("Background sync and webhooks"))
queue = svc.status.queue()
if queue is not None:
    names = {row["id"]: row["institution_name"] or row["id"] for row in rows}
    waiting, running, failed, alive = st.columns(4)
    waiting.metric(_("Waiting"), queue.waiting, help=_("Jobs queued: webhook events to apply and syncs to run"))
    running.metric(_("Running"), queue.running)
    failed.metric(_("Failed (24 h)"), queue.failed, help=_("Failed syncs are tried again with a growing pause"))
    alive.metric(_("Workers alive"), queue.workers, help=_("`python -m finance worker` processes with a heartbeat "
                                                           "in the last 30 s"))
    if queue.workers == 0:
        st.warning(_("No worker is running, so webhooks and scheduled syncs wait. Start one with `python -m finance "
                     "worker` (any number, on any machine that reaches the database)."), icon="⚠️")
    lines = [(_("Running: {job}") if job.status == "doing" else _("Waiting: {job}")).format(
                 job=jobs.job_label(job.task))
             + (" " + _("of **{name}**").format(name=escape_markdown(str(names.get(job.connection_id,
                                                                                   job.connection_id))))
                if job.connection_id else "")
             + (" " + _("(try {number})").format(number=job.attempts + 1) if job.attempts else "")
             + (_(", not before {time} UTC").format(time=f"{job.scheduled_at:%H:%M:%S}")
                if job.status == "todo" and job.scheduled_at and job.scheduled_at > now else "")
             for job in queue.jobs]
    if queue.last_failure:
        task, connection_id, when = queue.last_failure
        lines.append((_("Last failure: {job} of {name} at {when} UTC (its reason is on the sync run below).")
                      if connection_id else
                      _("Last failure: {job} at {when} UTC (its reason is on the sync run below).")).format(
            job=jobs.job_label(task), name=escape_markdown(str(names.get(connection_id, connection_id))),
            when=format_timestamp(when)))
    st.markdown("\n".join(f"- {line}" for line in lines) or _("Idle: nothing waiting or running."))
elif state is None:
    st.info(_("Background work (webhooks and scheduled syncs) runs in the app server started with `streamlit run "
              "app.py`; it is not running in this process."), icon="ℹ️")
else:
    names = {row["id"]: row["institution_name"] or row["id"] for row in rows}
    left, middle, right, alive = st.columns(4)
    left.metric(_("Queued syncs"), len(state.queue) + (1 if state.current else 0))
    alive.metric(_("Workers alive"), 1 if state.running else 0,
                 help=_("DuckDB: the worker inside this app process"))
    middle.metric(_("Webhooks received"), state.received,
                  help=ngettext("{count} replay ignored", "{count} replays ignored", state.duplicates).format(
                      count=state.duplicates))
    right.metric(_("Webhooks rejected"), state.rejected,
                 help=escape_markdown(state.last_rejection) if state.last_rejection else _("None so far"))
    lines = []
    if state.current:
        lines.append(_("Syncing **{name}** now.").format(name=escape_markdown(names.get(state.current,
                                                                                         state.current))))
    for queued in state.queue:
        lines.append(ngettext("Queued: **{name}** ({trigger}, {count} event, starts in {seconds} s).",
                              "Queued: **{name}** ({trigger}, {count} events, starts in {seconds} s).",
                              queued.events).format(
            name=escape_markdown(names.get(queued.connection_id, queued.connection_id)),
            trigger=health.trigger_label(queued.trigger),
            count=queued.events, seconds=f"{queued.due_in:.0f}"))
    if state.next_runs:
        soonest = min(state.next_runs.values())
        lines.append(_("Next scheduled sync: {when} UTC (every {interval}).").format(
            when=format_timestamp(soonest), interval=health.format_age(state.interval))
            if state.interval else _("Scheduled syncs are off."))
    if state.paused:
        lines.append(_("Paused until reconnected: {names}.").format(
            names=escape_markdown(", ".join(names.get(c, c) for c in state.paused))))
    if state.last_webhook:
        provider, kind, when = state.last_webhook
        lines.append(_("Last webhook: {provider} “{kind}” at {when} UTC.").format(
            provider=provider, kind=escape_markdown(kind), when=format_timestamp(when)))
    if state.syncs:
        lines.append(_("Syncs run by the worker: {counts}.").format(
            counts=", ".join(f"{n} {health.trigger_label(t)}" for t, n in sorted(state.syncs.items()))))
    lines += [escape_markdown(line) for line in state.registration]
    if state.last_error:
        lines.append(":red[" + _("Last background error: {error} (see the server log).").format(
            error=escape_markdown(state.last_error)) + "]")
    st.markdown("\n".join(f"- {line}" for line in lines) or _("Idle."))
if not svc.settings.public_url:
    st.caption(_("Webhooks are off: set FINANCE_PUBLIC_URL to the address the providers can reach this app at (e.g. "
                 "http://127.0.0.1:8501 for the offline sandbox) and restart."))
if not recent.empty:
    st.dataframe(health.events_table(recent), hide_index=True, width="stretch", key="status_webhooks",
                 column_config={_("Received"): st.column_config.DatetimeColumn(format=_("YYYY-MM-DD HH:mm:ss"))})

runs = data.runs
st.subheader(_("Sync runs"))
if runs.empty:
    st.info(_("No sync has run yet. Press **Sync now** on Connections."))
else:
    names = {row["id"]: row["institution_name"] or row["id"] for row in rows}
    choice = st.selectbox(_("Connection"), ["", *names], format_func=lambda k: names.get(k, _("All connections")),
                          key="status_connection")
    shown = runs[runs["connection_id"] == choice] if choice else runs
    st.plotly_chart(health.timeline_figure(shown), key="status_timeline")
    st.dataframe(health.runs_table(shown), hide_index=True, width="stretch",
                 column_config={_("Started"): st.column_config.DatetimeColumn(format=_("YYYY-MM-DD HH:mm:ss")),
                                _("Duration (s)"): st.column_config.NumberColumn(format="%.1f")})

st.subheader(_("Errors and what fixes them"))
errors = health.open_errors(runs)
if not errors:
    st.success(_("No open errors: every connection's latest sync succeeded or is still running."), icon="✅")
for error in errors:
    code = f" ({error.error_code})" if error.error_code else ""
    st.error(f"**{escape_markdown(str(error.institution))}** · {format_timestamp(error.started_at)} UTC{code}: "
             f"{escape_markdown(str(error.message))}", icon="⚠️")
    st.markdown(f"👉 {error.action}")
