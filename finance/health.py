"""The health of each connection, the sync-run timeline and the errors with what fixes them.

`connection_health` and the figure and table builders are pure (data in, answer out); `read_status` is the one
read from the store behind the Sync status page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import sqlalchemy as sa

from finance.model import ConnectionStatus

STALE_AFTER = timedelta(days=2)
CONSENT_WARNING = timedelta(days=7)
STUCK_AFTER = timedelta(minutes=30)

CONNECTED, ATTENTION, SYNCING, FAILED = "connected", "attention", "syncing", "failed"
LEVELS: dict[str, tuple[str, str]] = {  # level: (label, badge colour)
    CONNECTED: ("Connected", "green"),
    ATTENTION: ("Needs attention", "orange"),
    SYNCING: ("Syncing", "blue"),
    FAILED: ("Failed", "red"),
}
OUTCOME_COLORS = {"success": "#2e7d32", "failed": "#c62828", "running": "#1565c0"}

SYNC_NOW = "press Sync now on Connections"
RETRY = f"Will retry on the next sync; {SYNC_NOW} to try at once."
RECONNECT = "Reconnect: on Connections, connect this bank again and log in (or approve access) at the bank."

REAUTH_CODES = frozenset({
    # Plaid
    "ITEM_LOGIN_REQUIRED", "PENDING_EXPIRATION", "PENDING_DISCONNECT", "ACCESS_NOT_GRANTED",
    "USER_PERMISSION_REVOKED", "USER_ACCOUNT_REVOKED", "ITEM_LOCKED", "INVALID_CREDENTIALS", "INVALID_MFA",
    "INVALID_UPDATED_USERNAME", "INSUFFICIENT_CREDENTIALS", "NO_ACCOUNTS", "USER_SETUP_REQUIRED",
    "USER_INPUT_TIMEOUT",
    # Pluggy and our own statuses
    "LOGIN_ERROR", "INVALID_CREDENTIALS_MFA", "ACCOUNT_LOCKED", "USER_AUTHORIZATION_PENDING",
    "USER_AUTHORIZATION_NOT_GRANTED", "CONSENT_EXPIRED", "TOO_MANY_CONSECUTIVE_LOGIN_FAILURES",
    "MFA_PARAMERTER_WAS_ALREADY_USED_ERROR", "CONNECTOR_REQUIRED_PARAMETER_VALIDATION_ERROR",
    "needs_reconnect", "needs_input",
})
CONFIG_CODES = frozenset({
    "NO_CREDENTIALS", "NO_PROVIDER", "BAD_ENVIRONMENT", "CLIENT_KEYS_UNAUTHORIZED", "CLIENT_DISABLED",
    "INVALID_API_KEYS", "INVALID_SECRET", "INVALID_CLIENT_ID", "MISSING_CLIENT_ID", "MISSING_SECRET",
    "UNAUTHORIZED_ENVIRONMENT", "HTTP_401", "HTTP_403",
})
GONE_CODES = frozenset({
    "NOT_FOUND", "ITEM_NOT_FOUND", "INVALID_ACCESS_TOKEN", "NO_ACCESS_TOKEN", "INSTITUTION_NOT_FOUND",
    "CONNECTOR_NOT_FOUND", "revoked",
})


@dataclass(frozen=True, slots=True)
class Health:
    """What the strip shows for one connection: a level, a short label, what to do, and why."""

    level: str  # connected, attention, syncing, failed
    label: str
    action: str  # "" when there is nothing to do
    reason: str = ""

    @property
    def level_label(self) -> str:
        """Connected, Needs attention, Syncing or Failed."""
        return LEVELS[self.level][0]

    @property
    def color(self) -> str:
        """The badge colour of the level."""
        return LEVELS[self.level][1]


def _utc(value: Any) -> datetime | None:
    """A datetime (or pandas Timestamp) as aware UTC; None, NaT and NaN become None."""
    if value is None or value != value:  # NaT and NaN are unequal to themselves
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_age(delta: timedelta) -> str:
    """`under a minute`, `5 min`, `3 h`, `4 days`: how long ago, roughly."""
    seconds = max(delta.total_seconds(), 0)
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def action_for_error(code: str | None) -> str:
    """What fixes a failed sync, from its error code."""
    code = code or ""
    if code in REAUTH_CODES:
        return RECONNECT
    if code in CONFIG_CODES:
        return ("Fix the provider's credentials (PLUGGY_CLIENT_ID/PLUGGY_CLIENT_SECRET or PLAID_CLIENT_ID/"
                f"PLAID_SECRET in .streamlit/secrets.toml or the environment), restart the app, then {SYNC_NOW}.")
    if code in GONE_CODES:
        return "The provider no longer knows this connection: delete it on Connections and connect the bank again."
    if code == "INTERNAL":
        return f"An unexpected error in the app; nothing was changed. Check the server logs, then {SYNC_NOW}."
    return RETRY  # transient: 5xx, timeouts, rate limits, the bank down, unreadable answers


def _get(row: Mapping[str, Any], key: str) -> Any:
    value = row.get(key)
    return None if value is None or value != value else value


def connection_health(connection: Mapping[str, Any], runs: Sequence[Mapping[str, Any]],
                      now: datetime) -> Health:
    """The health of one connection from its row (status, status_detail, error_code, consent_expires_at,
    last_success_at) and its sync runs (trigger, started_at, outcome, error_code, message; any order)."""
    now = _utc(now) or datetime.now(UTC)
    status = _get(connection, "status") or ""
    detail = _get(connection, "status_detail") or ""
    consent = _utc(_get(connection, "consent_expires_at"))
    last_success = _utc(_get(connection, "last_success_at"))
    ordered = sorted(runs, key=lambda r: _utc(r.get("started_at")) or datetime.min.replace(tzinfo=UTC),
                     reverse=True)
    latest = ordered[0] if ordered else None
    running = latest if latest is not None and latest.get("outcome") == "running" else None
    running_age = now - (_utc(running.get("started_at")) or now) if running is not None else None

    if status == ConnectionStatus.SYNCING.value or (running_age is not None and running_age <= STUCK_AFTER):
        if running is not None and running_age is not None:
            reason = f"A {running.get('trigger') or 'manual'} sync started {format_age(running_age)} ago."
        else:
            reason = "The bank is updating this connection."
        return Health(SYNCING, "Syncing", "Nothing to do: a sync is in progress. Reload the page to see the result.",
                      reason)
    if status == ConnectionStatus.REVOKED.value:
        return Health(ATTENTION, "Disconnected",
                      "Connect the bank again on Connections to resume syncing; the history here is kept.",
                      detail or "This connection was disconnected.")
    if status == ConnectionStatus.NEEDS_INPUT.value:
        return Health(ATTENTION, "Needs your input",
                      "Reconnect on Connections and complete the bank's security step (a code, or approval in "
                      "the bank's app).", detail or "The bank is waiting for you.")
    if consent is not None and consent <= now:
        return Health(ATTENTION, "Consent expired", f"{RECONNECT} This renews the consent.",
                      f"Your consent for this bank expired on {consent:%Y-%m-%d}; no new data arrives until you "
                      "reconnect.")
    if status == ConnectionStatus.NEEDS_RECONNECT.value:
        return Health(ATTENTION, "Reconnect needed", RECONNECT, detail or "The bank asked for a new login.")
    if latest is not None and latest.get("outcome") == "failed":
        code = _get(latest, "error_code")
        action = action_for_error(code)
        reason = _get(latest, "message") or f"The last sync failed ({code or 'unknown error'})."
        if action == RECONNECT:
            return Health(ATTENTION, "Reconnect needed", action, reason)
        return Health(FAILED, "Sync failed", action, reason)
    if status == ConnectionStatus.FAILED.value:
        return Health(FAILED, "Sync failed", action_for_error(_get(connection, "error_code")),
                      detail or "The provider reported a failure.")
    if running_age is not None:  # a run older than STUCK_AFTER that never finished: the app stopped mid-sync
        return Health(ATTENTION, "Sync interrupted", f"The interrupted run changed nothing; {SYNC_NOW}.",
                      f"A sync started {format_age(running_age)} ago and never finished.")
    if status == ConnectionStatus.CONSENT_EXPIRING.value or (consent is not None and consent - now <= CONSENT_WARNING):
        when = f" on {consent:%Y-%m-%d}" if consent is not None else " soon"
        return Health(ATTENTION, "Consent expiring", f"{RECONNECT} Do it before the consent ends to keep data flowing.",
                      detail or f"Your consent for this bank expires{when}.")
    if last_success is None:
        return Health(ATTENTION, "Never synced", f"Nothing has been fetched yet: {SYNC_NOW}.",
                      "No sync of this connection has succeeded yet.")
    age = now - last_success
    if age > STALE_AFTER:
        return Health(ATTENTION, "Data is stale", "Press Sync now on Connections to fetch what changed.",
                      f"The last successful sync was {format_age(age)} ago ({last_success:%Y-%m-%d %H:%M} UTC).")
    return Health(CONNECTED, "Connected", "", f"Last successful sync {format_age(age)} ago.")


# --------------------------------------------------------------------------------------------
# Reading the store
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StatusData:
    """What the Sync status page reads from the store."""

    connections: pd.DataFrame  # one row per connection (no secrets)
    runs: pd.DataFrame  # sync runs, newest first, with the institution's name


def _frame(conn: sa.Connection, sql: str, params: dict[str, object] | None = None) -> pd.DataFrame:
    result = conn.execute(sa.text(sql), params or {})
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def read_status(conn: sa.Connection, *, limit: int = 500, per_connection: int = 20) -> StatusData:
    """Connections and their sync runs: the newest `limit` overall plus the newest `per_connection` of each."""
    connections = _frame(conn, """
        SELECT c.id, c.provider, c.institution_name, c.is_sandbox, c.status, c.status_detail, c.error_code,
               c.consent_expires_at, c.last_success_at, c.last_attempt_at, c.created_at,
               (SELECT COUNT(*) FROM accounts a WHERE a.connection_id = c.id) AS accounts
        FROM connections c ORDER BY c.created_at
    """)
    runs = _frame(conn, """
        WITH ranked AS (
            SELECT r.*, ROW_NUMBER() OVER (PARTITION BY r.connection_id ORDER BY r.started_at DESC) AS rn_connection,
                   ROW_NUMBER() OVER (ORDER BY r.started_at DESC) AS rn_all
            FROM sync_runs r
        )
        SELECT r.id, r.connection_id, COALESCE(c.institution_name, r.connection_id) AS institution, r.trigger,
               r.started_at, r.finished_at, r.duration_ms, r.window_start, r.outcome, r.added, r.modified,
               r.removed, r.merged, r.accounts, r.requests, r.error_code, r.message
        FROM ranked r LEFT JOIN connections c ON c.id = r.connection_id
        WHERE r.rn_connection <= :per_connection OR r.rn_all <= :limit
        ORDER BY r.started_at DESC
    """, {"per_connection": per_connection, "limit": limit})
    return StatusData(connections=connections, runs=runs)


# --------------------------------------------------------------------------------------------
# Page building blocks (pure)
# --------------------------------------------------------------------------------------------

def health_by_connection(data: StatusData, now: datetime) -> dict[str, Health]:
    """Each connection's health, by connection id."""
    runs = data.runs.to_dict("records")
    return {
        row["id"]: connection_health(row, [r for r in runs if r["connection_id"] == row["id"]], now)
        for row in data.connections.to_dict("records")
    }


@dataclass(frozen=True, slots=True)
class OpenError:
    """A failed run not yet followed by a success, with what fixes it."""

    connection_id: str
    institution: str
    started_at: datetime | None
    error_code: str | None
    message: str
    action: str


def open_errors(runs: pd.DataFrame, per_connection: int = 3) -> list[OpenError]:
    """Failed runs not yet followed by a successful one, newest first, with what fixes each."""
    errors: list[OpenError] = []
    for connection_id, group in runs.sort_values("started_at", ascending=False).groupby("connection_id", sort=False):
        found = 0
        for row in group.to_dict("records"):
            if row["outcome"] == "success" or found >= per_connection:
                break
            if row["outcome"] != "failed":
                continue
            found += 1
            code = _get(row, "error_code")
            errors.append(OpenError(str(connection_id), str(row["institution"]), _utc(row["started_at"]), code,
                                    _get(row, "message") or "The sync failed.", action_for_error(code)))
    return sorted(errors, key=lambda e: e.started_at or datetime.min.replace(tzinfo=UTC), reverse=True)


def runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs as the page shows them."""
    return pd.DataFrame({
        "Connection": runs["institution"],
        "Trigger": runs["trigger"],
        "Started": pd.to_datetime(runs["started_at"], utc=True),
        "Duration (s)": pd.to_numeric(runs["duration_ms"], errors="coerce") / 1000,
        "Added": runs["added"], "Modified": runs["modified"], "Removed": runs["removed"], "Merged": runs["merged"],
        "Requests": runs["requests"],
        "Outcome": runs["outcome"],
        "Message": runs["message"].fillna(""),
    })


def timeline_figure(runs: pd.DataFrame) -> go.Figure:
    """Sync runs over time: duration on the y axis, one colour per outcome, counts and message on hover."""
    fig = go.Figure()
    for outcome in ("success", "failed", "running"):
        data = runs[runs["outcome"] == outcome]
        if data.empty:
            continue
        custom = data[["institution", "trigger", "added", "modified", "removed", "merged", "requests"]].astype(str)
        custom["message"] = data["message"].fillna("").astype(str).str.slice(0, 120)
        fig.add_scatter(
            x=pd.to_datetime(data["started_at"], utc=True),
            y=pd.to_numeric(data["duration_ms"], errors="coerce").fillna(0) / 1000,
            mode="markers", name=outcome.capitalize(),
            marker={"color": OUTCOME_COLORS[outcome], "size": 10, "symbol": "x" if outcome == "failed" else "circle"},
            customdata=custom.to_numpy(),
            hovertemplate=("%{customdata[0]} · %{customdata[1]}<br>%{x|%Y-%m-%d %H:%M} · %{y:.1f} s<br>"
                           "+%{customdata[2]} ~%{customdata[3]} -%{customdata[4]} merged %{customdata[5]} · "
                           "%{customdata[6]} requests<br>%{customdata[7]}<extra></extra>"),
        )
    fig.update_layout(title="Sync runs: duration and outcome", height=340, yaxis_title="seconds",
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.2})
    fig.update_yaxes(rangemode="tozero")
    return fig
