"""Sync status: a health strip per connection (with its consent state and next scheduled sync), background work
(queue, schedule, webhooks), the timeline of sync runs, and open errors with their fix."""

from datetime import UTC, datetime

import streamlit as st

from finance import health, jobs, worker
from finance.formatting import escape_markdown, format_when
from finance.ui import sandbox
from finance.ui.context import services

st.title("Sync status")
svc = services()

data = svc.status.read()
recent = svc.events.recent(limit=50)

if data.connections.empty:
    st.info(f"No banks connected yet, so there is nothing to sync. Connect {sandbox.first_bank()} on Connections.")
    st.page_link("pages/connections.py", label="Connect a bank", icon="🏦")
    st.stop()

now = datetime.now(UTC)
healths = health.health_by_connection(data, now)
background = worker.current()
state = background.snapshot() if background is not None else None
interval = state.interval if state is not None else svc.settings.sync_interval
if st.button("Refresh", key="status_refresh", icon="🔄"):
    st.rerun()

st.subheader("Connections")
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
                        f":{health.LIFECYCLE_COLORS[lifecycle]}-badge[{lifecycle}]")
            st.caption(f"{row['provider']} · {row['accounts']} accounts · last successful sync "
                       f"{format_when(row['last_success_at'])}"
                       + format_when(row["consent_expires_at"], " · consent until %Y-%m-%d", missing=""))
            reason = escape_markdown(h.reason)
            st.markdown(reason if h.label == h.level_label else f"**{h.label}.** {reason}")
            if h.action:
                st.markdown(f"👉 {h.action}")
            next_run = state.next_runs.get(row["id"]) if state is not None else None
            own = state.intervals.get(row["id"], interval) if state is not None else interval  # provider's floor
            st.caption(health.schedule_line(row, own, now, next_run))

st.subheader("Background sync and webhooks")
queue = svc.status.queue()
if queue is not None:
    names = {row["id"]: row["institution_name"] or row["id"] for row in rows}
    waiting, running, failed, alive = st.columns(4)
    waiting.metric("Waiting", queue.waiting, help="Jobs queued: webhook events to apply and syncs to run")
    running.metric("Running", queue.running)
    failed.metric("Failed (24 h)", queue.failed, help="Failed syncs are tried again with a growing pause")
    alive.metric("Workers alive", queue.workers, help="`python -m finance worker` processes with a heartbeat "
                 "in the last 30 s")
    if queue.workers == 0:
        st.warning("No worker is running, so webhooks and scheduled syncs wait. Start one with "
                   "`python -m finance worker` (any number, on any machine that reaches the database).", icon="⚠️")
    lines = [f"{'Running' if job.status == 'doing' else 'Waiting'}: {jobs.job_label(job.task)}"
             + (f" of **{escape_markdown(str(names.get(job.connection_id, job.connection_id)))}**"
                if job.connection_id else "")
             + (f" (try {job.attempts + 1})" if job.attempts else "")
             + (format_when(job.scheduled_at, ", not before %H:%M:%S UTC", missing="")
                if job.status == "todo" and job.scheduled_at and job.scheduled_at > now else "")
             for job in queue.jobs]
    if queue.last_failure:
        task, connection_id, when = queue.last_failure
        concerns = f" of {escape_markdown(str(names.get(connection_id, connection_id)))}" if connection_id else ""
        lines.append(f"Last failure: {jobs.job_label(task)}{concerns} at {format_when(when)} UTC "
                     "(its reason is on the sync run below).")
    st.markdown("\n".join(f"- {line}" for line in lines) or "Idle: nothing waiting or running.")
elif state is None:
    st.info("Background work (webhooks and scheduled syncs) runs in the app server started with "
            "`streamlit run app.py`; it is not running in this process.", icon="ℹ️")
else:
    names = {row["id"]: row["institution_name"] or row["id"] for row in rows}
    left, middle, right, alive = st.columns(4)
    left.metric("Queued syncs", len(state.queue) + (1 if state.current else 0))
    alive.metric("Workers alive", 1 if state.running else 0, help="DuckDB: the worker inside this app process")
    middle.metric("Webhooks received", state.received, help=f"{state.duplicates} replays ignored")
    right.metric("Webhooks rejected", state.rejected, help=state.last_rejection or "None so far")
    lines = []
    if state.current:
        lines.append(f"Syncing **{names.get(state.current, state.current)}** now.")
    for queued in state.queue:
        lines.append(f"Queued: **{names.get(queued.connection_id, queued.connection_id)}** ({queued.trigger}, "
                     f"{queued.events} events, starts in {queued.due_in:.0f} s).")
    if state.next_runs:
        soonest = min(state.next_runs.values())
        lines.append(f"Next scheduled sync: {format_when(soonest)} UTC (every {health.format_age(state.interval)})."
                     if state.interval else "Scheduled syncs are off.")
    if state.paused:
        lines.append("Paused until reconnected: " + ", ".join(names.get(c, c) for c in state.paused) + ".")
    if state.last_webhook:
        provider, kind, when = state.last_webhook
        lines.append(f"Last webhook: {provider} `{kind}` at {format_when(when)} UTC.")
    if state.syncs:
        lines.append("Syncs run by the worker: " + ", ".join(f"{n} {t}" for t, n in sorted(state.syncs.items())) + ".")
    lines += list(state.registration)
    if state.last_error:
        lines.append(f":red[Last background error: {state.last_error} (see the server log).]")
    st.markdown("\n".join(f"- {line}" for line in lines) or "Idle.")
if not svc.settings.public_url:
    st.caption("Webhooks are off: set FINANCE_PUBLIC_URL to the address the providers can reach this app at (e.g. "
               "http://127.0.0.1:8501 for the offline sandbox) and restart.")
if not recent.empty:
    st.dataframe(health.events_table(recent), hide_index=True, width="stretch", key="status_webhooks",
                 column_config={"Received": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")})

runs = data.runs
st.subheader("Sync runs")
if runs.empty:
    st.info("No sync has run yet. Press **Sync now** on Connections.")
else:
    names = {row["id"]: row["institution_name"] or row["id"] for row in rows}
    choice = st.selectbox("Connection", ["", *names], format_func=lambda k: names.get(k, "All connections"),
                          key="status_connection")
    shown = runs[runs["connection_id"] == choice] if choice else runs
    st.plotly_chart(health.timeline_figure(shown), key="status_timeline")
    st.dataframe(health.runs_table(shown), hide_index=True, width="stretch",
                 column_config={"Started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
                                "Duration (s)": st.column_config.NumberColumn(format="%.1f")})

st.subheader("Errors and what fixes them")
errors = health.open_errors(runs)
if not errors:
    st.success("No open errors: every connection's latest sync succeeded or is still running.", icon="✅")
for error in errors:
    code = f" ({error.error_code})" if error.error_code else ""
    st.error(f"**{escape_markdown(str(error.institution))}** · {format_when(error.started_at)} UTC{code}: "
             f"{escape_markdown(str(error.message))}", icon="⚠️")
    st.markdown(f"👉 {error.action}")
