"""Sync status: a health strip per connection, the timeline of sync runs, and open errors with their fix."""

from datetime import UTC, datetime

import streamlit as st

from finance import health
from finance.formatting import format_when
from finance.ui.context import services

st.title("Sync status")
svc = services()

with svc.engine.connect() as conn:
    data = health.read_status(conn)

if data.connections.empty:
    st.info("No banks connected yet, so there is nothing to sync. Connect the sandbox bank **Pluggy Bank** "
            "(user `user-ok`, password `password-ok`) on Connections.")
    st.page_link("pages/connections.py", label="Connect a bank", icon="🏦")
    st.stop()

now = datetime.now(UTC)
healths = health.health_by_connection(data, now)
if st.button("Refresh", key="status_refresh", icon="🔄"):
    st.rerun()

st.subheader("Connections")
rows = data.connections.to_dict("records")
for start in range(0, len(rows), 3):
    for column, row in zip(st.columns(3), rows[start:start + 3], strict=False):
        h = healths[row["id"]]
        with column.container(border=True):
            st.markdown(f"**{row['institution_name'] or row['id']}** :{h.color}-badge[{h.level_label}]")
            st.caption(f"{row['provider']} · {row['accounts']} accounts · last successful sync "
                       f"{format_when(row['last_success_at'])}"
                       + format_when(row["consent_expires_at"], " · consent until %Y-%m-%d", missing=""))
            st.markdown(h.reason if h.label == h.level_label else f"**{h.label}.** {h.reason}")
            if h.action:
                st.markdown(f"👉 {h.action}")

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
    st.error(f"**{error.institution}** · {format_when(error.started_at)} UTC{code}: {error.message}", icon="⚠️")
    st.markdown(f"👉 {error.action}")
