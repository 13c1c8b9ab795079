"""The health of each connection, the sync-run timeline and the errors with what fixes them.

All of it is pure (data in, answer out): the Sync status page reads its data through
finance.store.sync_runs.read_status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from finance.formatting import escape_plot_text
from finance.i18n import N_, LazyText, _, format_short_day, format_timestamp, ngettext, number_separators
from finance.model import EXPIRING_SIGNALS, ConnectionStatus

STALE_AFTER = timedelta(days=2)
REVOKED_SIGNALS = frozenset({"USER_PERMISSION_REVOKED"})
NOTICE_SIGNALS = frozenset({"NEW_ACCOUNTS_AVAILABLE", "USER_ACCOUNT_REVOKED"})
PAUSED_STATUSES = frozenset({ConnectionStatus.NEEDS_RECONNECT.value, ConnectionStatus.NEEDS_INPUT.value,
                             ConnectionStatus.REVOKED.value})
CONSENT_WARNING = timedelta(days=7)
STUCK_AFTER = timedelta(minutes=30)

CONNECTED, ATTENTION, SYNCING, FAILED = "connected", "attention", "syncing", "failed"
LEVELS: dict[str, tuple[LazyText, str]] = {  # level: (label, badge colour)
    CONNECTED: (N_("Connected"), "green"),
    ATTENTION: (N_("Needs attention"), "orange"),
    SYNCING: (N_("Syncing"), "blue"),
    FAILED: (N_("Failed"), "red"),
}
OUTCOME_COLORS = {"success": "#2e7d32", "failed": "#c62828", "interrupted": "#ef6c00", "running": "#1565c0"}
UNFINISHED = frozenset({"failed", "interrupted"})
"""Run outcomes that stay open errors until a later run of the connection succeeds."""

RETRY = N_("Will retry on the next sync; press Sync now on Connections to try at once.")
RECONNECT = N_("Reconnect: on Connections, connect this bank again and log in (or approve access) at the bank.")

REAUTH_CODES = frozenset({  # the providers' codes for "the user must log in again or renew consent", and ours
    "ITEM_LOGIN_REQUIRED", "PENDING_EXPIRATION", "PENDING_DISCONNECT", "ACCESS_NOT_GRANTED",
    "USER_PERMISSION_REVOKED", "USER_ACCOUNT_REVOKED", "ITEM_LOCKED", "INVALID_CREDENTIALS", "INVALID_MFA",
    "INVALID_UPDATED_USERNAME", "INSUFFICIENT_CREDENTIALS", "NO_ACCOUNTS", "USER_SETUP_REQUIRED",
    "USER_INPUT_TIMEOUT",
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
STORE_ACTIONS = {  # the store failed, not the bank: finance.errors.StoreError codes
    "STORE_FULL": N_("Free disk space on the machine running the app, then press Sync now on Connections."),
    "STORE_READ_ONLY": N_("Make the database file and its folder writable by the app, then press Sync now on "
                          "Connections."),
    "STORE_CORRUPT": N_("Restore the database file from a backup (or move it aside to start afresh); restart the "
                        "app."),
    "STORE_UNAVAILABLE": N_("Restart the app, then press Sync now on Connections; if it keeps failing, check the disk "
                            "or restore a backup."),
    "STORE_BUSY": N_("Another process holds the database file: stop it (or use the running app), then try again."),
}
INTERRUPTED_ACTION = N_("Nothing from the interrupted run was saved; press Sync now on Connections, or wait for the "
                        "next scheduled sync.")
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

    def __post_init__(self) -> None:
        """Advice defined at import time (RECONNECT…) in the language of the moment the health is read."""
        object.__setattr__(self, "action", str(self.action))
        object.__setattr__(self, "reason", str(self.reason))

    @property
    def level_label(self) -> str:
        """Connected, Needs attention, Syncing or Failed."""
        return str(LEVELS[self.level][0])

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
        return _("under a minute")
    if seconds < 3600:
        return _("{count} min").format(count=int(seconds // 60))
    if seconds < 48 * 3600:
        return _("{count} h").format(count=f"{seconds / 3600:.0f}")
    days = round(seconds / 86400)
    return ngettext("{count} day", "{count} days", days).format(count=days)


def action_for_error(code: str | None) -> LazyText:
    """What fixes a failed sync, from its error code (translated when shown; compare it with RECONNECT)."""
    code = code or ""
    if code in REAUTH_CODES:
        return RECONNECT
    if code in CONFIG_CODES:
        return N_("Fix the provider's client id and secret (the message names the settings; set them in "
                  ".streamlit/secrets.toml or the environment), restart the app, then press Sync now on Connections.")
    if code in GONE_CODES:
        return N_("The provider no longer knows this connection: delete it on Connections and connect the bank "
                  "again.")
    if code in STORE_ACTIONS:
        return STORE_ACTIONS[code]
    if code == "INTERRUPTED":
        return INTERRUPTED_ACTION
    if code == "INTERNAL":
        return N_("An unexpected error in the app; nothing was changed. Check the server logs, then press Sync now "
                  "on Connections.")
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
            reason = _("A {trigger} sync started {age} ago.").format(
                trigger=trigger_label(running.get("trigger") or "manual"), age=format_age(running_age))
        else:
            reason = _("The bank is updating this connection.")
        return Health(SYNCING, _("Syncing"),
                      _("Nothing to do: a sync is in progress. Reload the page to see the result."), reason)
    signal = _get(connection, "signal_code")
    signal_detail = _get(connection, "signal_detail") or ""
    if signal in REVOKED_SIGNALS:
        return Health(ATTENTION, _("Access revoked"), RECONNECT, signal_detail or _("Access to this bank was revoked."))
    if status == ConnectionStatus.REVOKED.value:
        return Health(ATTENTION, _("Disconnected"),
                      _("Connect the bank again on Connections to resume syncing; the history here is kept."),
                      detail or _("This connection was disconnected."))
    if status == ConnectionStatus.NEEDS_INPUT.value:
        return Health(ATTENTION, _("Needs your input"),
                      _("Reconnect on Connections and complete the bank's security step (a code, or approval in the "
                        "bank's app)."), detail or _("The bank is waiting for you."))
    if consent is not None and consent <= now:
        return Health(ATTENTION, _("Consent expired"), RECONNECT + " " + _("This renews the consent."),
                      _("Your consent for this bank expired on {day}; no new data arrives until you reconnect.")
                      .format(day=format_short_day(consent)))
    if status == ConnectionStatus.NEEDS_RECONNECT.value:
        return Health(ATTENTION, _("Reconnect needed"), RECONNECT, detail or _("The bank asked for a new login."))
    until = _utc(_get(connection, "signal_until"))
    if signal in EXPIRING_SIGNALS:
        if until is not None and until <= now:
            return Health(ATTENTION, _("Reconnect needed"), RECONNECT,
                          _("The bank announced the connection would stop on {day}; that date has passed.").format(
                              day=format_short_day(until)))
        return Health(ATTENTION, _("Consent expiring"), RECONNECT + " " + _("Do it before the date to keep data "
                                                                            "flowing."),
                      signal_detail or _("The bank announced this connection will stop working soon."))
    if latest is not None and latest.get("outcome") == "interrupted":
        return Health(ATTENTION, _("Sync interrupted"), INTERRUPTED_ACTION,
                      _get(latest, "message") or _("The last sync stopped before it finished."))
    if latest is not None and latest.get("outcome") == "failed":
        code = _get(latest, "error_code")
        action = action_for_error(code)
        reason = _get(latest, "message") or _("The last sync failed ({code}).").format(
            code=code or _("unknown error"))
        if action == RECONNECT:
            return Health(ATTENTION, _("Reconnect needed"), action, reason)
        return Health(FAILED, _("Sync failed"), action, reason)
    if status == ConnectionStatus.FAILED.value:
        return Health(FAILED, _("Sync failed"), action_for_error(_get(connection, "error_code")),
                      detail or _("The provider reported a failure."))
    if running_age is not None:  # a run older than STUCK_AFTER that never finished: the app stopped mid-sync
        return Health(ATTENTION, _("Sync interrupted"),
                      _("The interrupted run changed nothing; press Sync now on Connections."),
                      _("A sync started {age} ago and never finished.").format(age=format_age(running_age)))
    if status == ConnectionStatus.CONSENT_EXPIRING.value or (consent is not None and consent - now <= CONSENT_WARNING):
        expires = _("Your consent for this bank expires on {day}.").format(day=format_short_day(consent)) \
            if consent is not None else _("Your consent for this bank expires soon.")
        return Health(ATTENTION, _("Consent expiring"),
                      RECONNECT + " " + _("Do it before the consent ends to keep data flowing."), detail or expires)
    if last_success is None:
        return Health(ATTENTION, _("Never synced"), _("Nothing has been fetched yet: press Sync now on Connections."),
                      _("No sync of this connection has succeeded yet."))
    age = now - last_success
    if age > STALE_AFTER:
        return Health(ATTENTION, _("Data is stale"), _("Press Sync now on Connections to fetch what changed."),
                      _("The last successful sync was {age} ago ({when} UTC).").format(
                          age=format_age(age), when=format_timestamp(last_success)))
    if signal in NOTICE_SIGNALS:
        return Health(ATTENTION, _("New accounts available") if signal == "NEW_ACCOUNTS_AVAILABLE" else
                      _("Account revoked"), _("Reconnect on Connections to choose which accounts to share."),
                      signal_detail)
    return Health(CONNECTED, _("Connected"), "", _("Last successful sync {age} ago.").format(age=format_age(age)))


# --------------------------------------------------------------------------------------------
# Consent lifecycle, schedule and the banner (pure)
# --------------------------------------------------------------------------------------------

ACTIVE, SYNCING_STATE, NEEDS_RECONNECT, CONSENT_EXPIRING, REVOKED, FAILED_STATE = (
    "active", "syncing", "needs reconnect", "consent expiring", "revoked", "failed")
LIFECYCLE_COLORS = {ACTIVE: "green", SYNCING_STATE: "blue", NEEDS_RECONNECT: "red", CONSENT_EXPIRING: "orange",
                    REVOKED: "gray", FAILED_STATE: "red"}
LIFECYCLE_LABELS = {ACTIVE: N_("active"), SYNCING_STATE: N_("syncing"), NEEDS_RECONNECT: N_("needs reconnect"),
                    CONSENT_EXPIRING: N_("consent expiring"), REVOKED: N_("revoked"), FAILED_STATE: N_("failed")}
TRIGGERS = {"manual": N_("manual"), "schedule": N_("scheduled"), "webhook": N_("webhook"), "connect": N_("connect"),
            "reconnect": N_("reconnect"), "cli": N_("command line")}
OUTCOMES = {"success": N_("Success"), "failed": N_("Failed"), "interrupted": N_("Interrupted"),
            "running": N_("Running"), "skipped": N_("Skipped")}


CONNECTION_STATUSES = {  # a connection's status (finance.model.ConnectionStatus) in words
    ConnectionStatus.ACTIVE.value: N_("Connected"), ConnectionStatus.SYNCING.value: N_("Syncing"),
    ConnectionStatus.NEEDS_INPUT.value: N_("Needs your input"),
    ConnectionStatus.NEEDS_RECONNECT.value: N_("Needs reconnect"),
    ConnectionStatus.CONSENT_EXPIRING.value: N_("Consent expiring"), ConnectionStatus.REVOKED.value: N_("Disconnected"),
    ConnectionStatus.FAILED.value: N_("Failed"),
}


def status_label(status: str) -> str:
    """A connection's status in words ("Needs reconnect"); an unknown status as it came."""
    return str(CONNECTION_STATUSES.get(status, status))


def trigger_label(trigger: str) -> str:
    """What started a sync run, in words ("manual", "webhook"…); an unknown trigger as it came."""
    return str(TRIGGERS.get(trigger, trigger))


def outcome_label(outcome: str) -> str:
    """A run's outcome in words; an unknown outcome as it came."""
    return str(OUTCOMES.get(outcome, outcome))


def lifecycle_state(connection: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """Where a connection stands in its consent lifecycle, from the provider's signals: its status (what the last
    sync or webhook read), a webhook's announced end date or revocation, the consent expiry and its latest run.
    One of active, syncing, needs reconnect, consent expiring, revoked, failed."""
    now = _utc(now) or datetime.now(UTC)
    status = _get(connection, "status") or ""
    signal = _get(connection, "signal_code")
    until = _utc(_get(connection, "signal_until"))
    consent = _utc(_get(connection, "consent_expires_at"))
    latest = max(runs, key=lambda r: _utc(r.get("started_at")) or datetime.min.replace(tzinfo=UTC), default=None)
    if status == ConnectionStatus.REVOKED.value or signal in REVOKED_SIGNALS:
        return REVOKED
    if status in (ConnectionStatus.NEEDS_RECONNECT.value, ConnectionStatus.NEEDS_INPUT.value):
        return NEEDS_RECONNECT
    if (consent is not None and consent <= now) or (signal in EXPIRING_SIGNALS and until is not None
                                                     and until <= now):
        return NEEDS_RECONNECT
    if latest is not None and latest.get("outcome") == "failed" and action_for_error(
            _get(latest, "error_code")) == RECONNECT:
        return NEEDS_RECONNECT
    if (signal in EXPIRING_SIGNALS or status == ConnectionStatus.CONSENT_EXPIRING.value
            or (consent is not None and consent - now <= CONSENT_WARNING)):
        return CONSENT_EXPIRING
    started = _utc(latest.get("started_at")) if latest is not None else None
    if status == ConnectionStatus.SYNCING.value or (
            latest is not None and latest.get("outcome") == "running" and started is not None
            and now - started <= STUCK_AFTER):
        return SYNCING_STATE
    if status == ConnectionStatus.FAILED.value or (latest is not None and latest.get("outcome") == "failed"):
        return FAILED_STATE
    return ACTIVE


def is_paused(connection: Mapping[str, Any]) -> bool:
    """Scheduled syncs skip a connection that needs the user (reconnect, a code, revoked); a reconnect that
    succeeds makes it active again, and the schedule resumes."""
    return (_get(connection, "status") or "") in PAUSED_STATUSES or _get(connection, "signal_code") in REVOKED_SIGNALS


def next_sync_at(connection: Mapping[str, Any], interval: timedelta | None) -> datetime | None:
    """When the schedule syncs this connection next: `interval` after its last attempt (or its creation); None when
    scheduled syncs are off or the connection is paused."""
    if interval is None or is_paused(connection):
        return None
    moments = [m for m in (_utc(_get(connection, k)) for k in ("last_success_at", "last_attempt_at")) if m]
    base = max(moments) if moments else _utc(_get(connection, "created_at"))
    return (base or datetime.now(UTC)) + interval


@dataclass(frozen=True, slots=True)
class BannerItem:
    """A connection that needs the user, as the banner on every page shows it."""

    connection_id: str
    institution: str
    state: str
    message: str

    @property
    def urgent(self) -> bool:
        """Data has stopped (reconnect or revoked) rather than about to stop."""
        return self.state != CONSENT_EXPIRING


def banner_items(connections: Sequence[Mapping[str, Any]], now: datetime) -> list[BannerItem]:
    """The connections that need the user: reconnect needed, consent expiring, or access revoked at the bank (a
    connection the user disconnected here is left alone)."""
    items = []
    for row in connections:
        state = lifecycle_state(row, [], now)
        revoked_by_bank = _get(row, "signal_code") in REVOKED_SIGNALS
        if state not in (NEEDS_RECONNECT, CONSENT_EXPIRING) and not (state == REVOKED and revoked_by_bank):
            continue
        name = _get(row, "institution_name") or str(row["id"])
        reason = _get(row, "signal_detail") if _get(row, "signal_code") else None
        reason = reason or _get(row, "status_detail") or {
            NEEDS_RECONNECT: _("The bank needs you to log in again."),
            CONSENT_EXPIRING: _("Your consent for this bank expires soon."),
        }.get(state, _("Access to this bank was revoked."))
        items.append(BannerItem(str(row["id"]), str(name), state, reason))
    return items


def schedule_line(connection: Mapping[str, Any], interval: timedelta | None, now: datetime,
                  next_run: datetime | None = None) -> str:
    """When the schedule syncs this connection next, or why it does not: for the Sync status cards."""
    if interval is None:
        return _("Scheduled syncs are off (FINANCE_SYNC_INTERVAL=off).")
    if is_paused(connection):
        return _("Scheduled syncs are paused until you reconnect; they resume by themselves after that.")
    due = next_run or next_sync_at(connection, interval)
    if due is None:
        return ""
    now = _utc(now) or datetime.now(UTC)
    due = _utc(due) or due
    if due <= now:
        return _("Next scheduled sync due now (every {interval}).").format(interval=format_age(interval))
    return _("Next scheduled sync in {wait} (every {interval}).").format(wait=format_age(due - now),
                                                                         interval=format_age(interval))


def events_table(events: pd.DataFrame) -> pd.DataFrame:
    """The recent webhook events as the Sync status page shows them."""
    return pd.DataFrame({
        _("Received"): pd.to_datetime(events["received_at"], utc=True),
        _("Provider"): events["provider"],
        _("Event"): events["event_type"],
        _("Concerns"): events["concerns"].fillna(""),
        _("Outcome"): events["outcome"],
        _("What happened"): events["detail"].fillna("") + events["error"].fillna("").map(
            lambda e: f" ({e})" if e else ""),
    })


# --------------------------------------------------------------------------------------------
# Page building blocks (pure)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StatusData:
    """What the Sync status page reads from the store (finance.store.sync_runs.read_status)."""

    connections: pd.DataFrame  # one row per connection (no secrets)
    runs: pd.DataFrame  # sync runs, newest first, with the institution's name


def health_by_connection(data: StatusData, now: datetime) -> dict[str, Health]:
    """Each connection's health, by connection id."""
    runs = data.runs.to_dict("records")
    return {
        row["id"]: connection_health(row, [r for r in runs if r["connection_id"] == row["id"]], now)
        for row in data.connections.to_dict("records")
    }


@dataclass(frozen=True, slots=True)
class OpenError:
    """A failed (or interrupted) run not yet followed by a success, with what fixes it."""

    connection_id: str
    institution: str
    started_at: datetime | None
    error_code: str | None
    message: str
    action: str


def open_errors(runs: pd.DataFrame, per_connection: int = 3) -> list[OpenError]:
    """Failed and interrupted runs not yet followed by a successful one, newest first, with what fixes each."""
    errors: list[OpenError] = []
    for connection_id, group in runs.sort_values("started_at", ascending=False).groupby("connection_id", sort=False):
        found = 0
        for row in group.to_dict("records"):
            if row["outcome"] == "success" or found >= per_connection:
                break
            if row["outcome"] not in UNFINISHED:
                continue
            found += 1
            code = _get(row, "error_code")
            errors.append(OpenError(str(connection_id), str(row["institution"]), _utc(row["started_at"]), code,
                                    _get(row, "message") or _("The sync failed."), str(action_for_error(code))))
    return sorted(errors, key=lambda e: e.started_at or datetime.min.replace(tzinfo=UTC), reverse=True)


def runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs as the page shows them."""
    return pd.DataFrame({
        _("Connection"): runs["institution"],
        _("Trigger"): [trigger_label(t) for t in runs["trigger"]],
        _("Started"): pd.to_datetime(runs["started_at"], utc=True),
        _("Duration (s)"): pd.to_numeric(runs["duration_ms"], errors="coerce") / 1000,
        _("Added"): runs["added"], _("Modified"): runs["modified"], _("Removed"): runs["removed"],
        _("Merged"): runs["merged"], _("Requests"): runs["requests"],
        _("Outcome"): [outcome_label(o) for o in runs["outcome"]],
        _("Message"): runs["message"].fillna(""),
    })


def timeline_figure(runs: pd.DataFrame) -> go.Figure:
    """Sync runs over time: duration on the y axis, one colour per outcome, counts and message on hover."""
    fig = go.Figure()
    for outcome in OUTCOME_COLORS:
        data = runs[runs["outcome"] == outcome]
        if data.empty:
            continue
        custom = data[["institution", "trigger", "added", "modified", "removed", "merged", "requests"]].astype(str)
        custom["institution"] = [escape_plot_text(name) for name in custom["institution"]]  # bank text: no markup
        custom["trigger"] = [trigger_label(t) for t in data["trigger"]]
        custom["message"] = [escape_plot_text(m) for m in data["message"].fillna("").astype(str).str.slice(0, 120)]
        fig.add_scatter(
            x=pd.to_datetime(data["started_at"], utc=True),
            y=pd.to_numeric(data["duration_ms"], errors="coerce").fillna(0) / 1000,
            mode="markers", name=outcome_label(outcome),
            marker={"color": OUTCOME_COLORS[outcome], "size": 10, "symbol": "x" if outcome == "failed" else "circle"},
            customdata=custom.to_numpy(),
            hovertemplate=("%{customdata[0]} · %{customdata[1]}<br>%{x|" + _("%Y-%m-%d") + " %H:%M} · %{y:.1f} s<br>"
                           + _("+%{customdata[2]} ~%{customdata[3]} -%{customdata[4]} merged %{customdata[5]} · "
                               "%{customdata[6]} requests") + "<br>%{customdata[7]}<extra></extra>"),
        )
    fig.update_layout(title=_("Sync runs: duration and outcome"), height=340, yaxis_title=_("seconds"),
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.2},
                      separators=number_separators())
    fig.update_yaxes(rangemode="tozero")
    return fig
