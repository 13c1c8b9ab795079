"""The steps of the connect widget, as a pure state machine (no Streamlit, no HTTP).

The widget in the browser only draws a `Flow` and sends events back; this module decides what an event
means. `handle(flow, event)` returns the next flow and, when the provider must be called, an effect
(`Login`, `SendMfa`, `MintToken`, `Finish`) that the Streamlit shell (finance/ui/connect_widget.py)
performs before feeding the outcome back through `settled`, `failed`, `launched` or `synced`.

Two kinds of widget walk the same flow:
- `offline`: our own sandbox widget (pick a bank, credentials, MFA, success or error), each step a round
  trip to Python, which calls the provider (the in-process emulator, or any sandbox without a hosted widget);
- hosted: the provider's own widget (its `HostedWidget`), loaded from its CDN with a token our backend mints;
  its success callback comes back as `Finish`.
Every event carries the `step_id` of the screen it was sent from, so a double click or a late callback
from a screen that is gone changes nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from finance.i18n import N_, LazyText, _
from finance.model import ConnectionState, ConnectionStatus, Institution

OFFLINE = "offline"

# The id this single-user dashboard gives providers for "the user" (their client user id).
CLIENT_USER_ID = "open-finance-dashboard"

MAX_VALUE_LENGTH = 4096  # longer than any credential; a sandbox's JSON password fits


@dataclass(frozen=True, slots=True)
class HostedWidget:
    """A provider's own connect widget, loaded from its CDN with a token our backend mints."""

    kind: str  # what the browser draws; `launcher` registers `launchers[kind]` for the shared widget
    name: str  # as the provider calls it, for messages
    script: str  # the script's URL (pinned where the provider allows it)
    launcher: Path  # JavaScript that opens the widget and reports its callbacks (see finance/ui/connect_widget)
    returns_item: bool = False  # success names the item made or updated (else it hands over a public token)

    @property
    def host(self) -> str:
        return urlsplit(self.script).hostname or self.script


class Step(StrEnum):
    CHOOSE = "choose"  # offline: pick an institution
    CREDENTIALS = "credentials"  # offline: the bank's login fields
    MFA = "mfa"  # offline: the bank asks for a one-time code
    SYNCING = "syncing"  # connected; the shell registers the connection and runs the first sync
    READY = "ready"  # hosted: a button opens the provider's widget
    LAUNCH = "launch"  # hosted: a token was minted and the provider's widget is open
    DONE = "done"
    ERROR = "error"
    CLOSED = "closed"  # the user left a reconnect; the shell drops the flow


@dataclass(frozen=True, slots=True)
class Choice:
    """An institution as the widget shows it."""

    id: str
    name: str
    sandbox: bool = False
    color: str | None = None
    logo: str | None = None  # only inline data: URLs, so the offline widget never fetches from the internet

    @classmethod
    def of(cls, institution: Institution) -> Choice:
        color = (institution.primary_color or "").lstrip("#")
        logo = institution.logo_url if (institution.logo_url or "").startswith("data:image/") else None
        return cls(id=institution.id, name=institution.name, sandbox=institution.is_sandbox,
                   color=f"#{color}" if re.fullmatch(r"[0-9a-fA-F]{6}", color) else None, logo=logo)


@dataclass(frozen=True, slots=True)
class Field:
    """A login field the bank asks for (a connector's credentials, a sandbox login)."""

    name: str
    label: str
    type: str = "text"
    placeholder: str | None = None
    optional: bool = False
    validation: str | None = None
    validation_message: str | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Field:
        kind = str(raw.get("type") or "text")
        return cls(name=str(raw["name"]), label=str(raw.get("label") or raw["name"]),
                   type=kind if kind in ("text", "password", "number") else "text",
                   placeholder=str(raw["placeholder"]) if raw.get("placeholder") else None,
                   optional=bool(raw.get("optional")), validation=raw.get("validation") or None,
                   validation_message=raw.get("validationMessage") or None)


@dataclass(frozen=True, slots=True)
class Prompt:
    """The one-time code the bank asks for."""

    name: str
    label: str
    instructions: str | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """Where one connect (or reconnect) widget stands."""

    provider: str
    label: str
    widget: HostedWidget | None  # None: our offline sandbox widget
    step: Step
    mode: str = "connect"  # or "reconnect": update mode for an existing connection
    step_id: int = 0
    connection_id: str | None = None
    external_id: str | None = None  # the provider's item id, once one exists
    institutions: tuple[Choice, ...] | None = None  # None until loaded
    institution: Choice | None = None
    fields: tuple[Field, ...] | None = None  # None until loaded
    prompt: Prompt | None = None
    message: str | None = None
    error: str | None = None
    ok: bool = True
    token: str | None = None  # hosted: the connect/link token the browser opens the widget with
    hint: str | LazyText | None = None  # offline: which sandbox logins work

    @property
    def kind(self) -> str:
        return self.widget.kind if self.widget else OFFLINE

    @property
    def reconnecting(self) -> bool:
        return self.mode == "reconnect"

    def to(self, step: Step, **changes: Any) -> Flow:
        """The flow on a new screen (a new step_id), with message and error cleared unless given."""
        changes = {"message": None, "error": None, **changes}
        return dataclasses.replace(self, step=step, step_id=self.step_id + 1, **changes)


# -- effects the shell performs -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Login:
    """Log in at the bank: a new connection, or new credentials for `flow.external_id` when reconnecting."""

    institution_id: str
    credentials: dict[str, str]


@dataclass(frozen=True, slots=True)
class SendMfa:
    external_id: str
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class MintToken:
    """Create the token the hosted widget opens with (for `flow.external_id` in update mode)."""


@dataclass(frozen=True, slots=True)
class Finish:
    """The hosted widget succeeded: the item it made or updated, or a public token (exchanged unless updating)."""

    item_id: str | None = None
    public_token: str | None = None


Effect = Login | SendMfa | MintToken | Finish


# -- starting a flow -------------------------------------------------------------------------------

def start(provider: str, label: str, widget: HostedWidget | None, *, hint: str | LazyText | None = None) -> Flow:
    """A new connect flow: the list of banks offline (`widget` None), a button that opens the hosted widget otherwise.
    `hint` says which sandbox logins work offline."""
    return Flow(provider=provider, label=label, widget=widget, hint=hint,
                step=Step.CHOOSE if widget is None else Step.READY)


def start_reconnect(provider: str, label: str, widget: HostedWidget | None, *, connection_id: str, external_id: str,
                    institution: Choice | None, hint: str | LazyText | None = None) -> Flow:
    """Update mode for an existing connection: its bank's login offline, the hosted widget's update mode otherwise."""
    step = Step.CREDENTIALS if widget is None else Step.READY
    if widget is None and institution is None:
        return Flow(provider=provider, label=label, widget=widget, hint=hint, step=Step.ERROR, mode="reconnect",
                    connection_id=connection_id, external_id=external_id, ok=False,
                    error=f"{label} did not say which bank this connection belongs to, so it cannot be "
                          "reconnected here. Disconnect it and connect the bank again.")
    return Flow(provider=provider, label=label, widget=widget, hint=hint, step=step, mode="reconnect",
                connection_id=connection_id, external_id=external_id, institution=institution)


def with_institutions(flow: Flow, institutions: Sequence[Institution]) -> Flow:
    """The loaded bank list, sandbox banks first (that is how testers and newcomers connect)."""
    choices = sorted((Choice.of(i) for i in institutions), key=lambda c: not c.sandbox)  # stable: provider order
    if not choices:
        return flow.to(Step.ERROR, ok=False, institutions=(),
                       error=f"{flow.label} listed no banks to connect. Try again later.")
    return dataclasses.replace(flow, institutions=tuple(choices))


def with_fields(flow: Flow, fields: Sequence[Mapping[str, Any]]) -> Flow:
    return dataclasses.replace(flow, fields=tuple(Field.of(f) for f in fields if f.get("name")))


def needs_institutions(flow: Flow) -> bool:
    return flow.step is Step.CHOOSE and flow.institutions is None


def needs_fields(flow: Flow) -> bool:
    return flow.step is Step.CREDENTIALS and flow.fields is None and flow.institution is not None


# -- events from the widget --------------------------------------------------------------------------

def handle(flow: Flow, event: object) -> tuple[Flow, Effect | None]:
    """What an event from the widget does. Stale or malformed events change nothing."""
    if not isinstance(event, Mapping) or event.get("step_id") != flow.step_id or not isinstance(event.get("type"), str):
        return flow, None
    kind = event["type"]
    if kind == "cancel" or (kind == "back" and flow.reconnecting and flow.step in (Step.CREDENTIALS, Step.READY)):
        if flow.reconnecting:
            return flow.to(Step.CLOSED), None
        return restart(flow), None
    handler = _HANDLERS.get((flow.step, kind))
    return handler(flow, event) if handler else (flow, None)


def restart(flow: Flow) -> Flow:
    """Back to the first screen of a connect flow, keeping the loaded bank list."""
    fresh = start(flow.provider, flow.label, flow.widget, hint=flow.hint)
    return dataclasses.replace(fresh, step_id=flow.step_id + 1, institutions=flow.institutions or None)


def _choose(flow: Flow, event: Mapping[str, Any]) -> tuple[Flow, Effect | None]:
    wanted = str(event.get("institution_id", ""))
    choice = next((c for c in flow.institutions or () if c.id == wanted), None)
    if choice is None:
        return flow.to(Step.CHOOSE, error=_("That bank is not in the list. Pick one of these.")), None
    return flow.to(Step.CREDENTIALS, institution=choice, fields=None), None


def _submit(flow: Flow, event: Mapping[str, Any]) -> tuple[Flow, Effect | None]:
    values, problem = check_values(flow.fields or (), event.get("values"))
    if problem:
        return flow.to(Step.CREDENTIALS, error=problem), None
    assert flow.institution is not None  # CREDENTIALS is only entered with one
    return flow, Login(flow.institution.id, values)


def _mfa(flow: Flow, event: Mapping[str, Any]) -> tuple[Flow, Effect | None]:
    assert flow.prompt is not None and flow.external_id is not None  # MFA is only entered with both
    field = Field(name=flow.prompt.name, label=flow.prompt.label)
    values, problem = check_values((field,), event.get("values"))
    if problem:
        return flow.to(Step.MFA, error=_("Enter the code the bank sent you ({label}).").format(
            label=flow.prompt.label)), None
    return flow, SendMfa(flow.external_id, values)


def _back(flow: Flow, _event: Mapping[str, Any]) -> tuple[Flow, Effect | None]:
    return restart(flow), None


def _retry(flow: Flow, _event: Mapping[str, Any]) -> tuple[Flow, Effect | None]:
    if flow.widget is not None:
        return flow.to(Step.READY, token=None), None
    if flow.institution is not None and (flow.reconnecting or flow.fields):
        return flow.to(Step.CREDENTIALS, prompt=None, external_id=flow.external_id if flow.reconnecting else None,
                       fields=flow.fields), None
    return restart(flow), None


def _open(flow: Flow, _event: Mapping[str, Any]) -> tuple[Flow, Effect | None]:
    return flow, MintToken()


def _hosted_success(flow: Flow, event: Mapping[str, Any]) -> tuple[Flow, Effect | None]:
    if flow.widget is None:
        return flow, None
    name = flow.widget.name
    if flow.widget.returns_item:
        item_id = _short_text(event.get("item_id"))
        if not item_id:
            return flow.to(Step.ERROR, ok=False, error=_("{name} finished without saying which connection it made. Try "
                                                         "again.").format(name=name)), None
        if flow.reconnecting and item_id != flow.external_id:
            return flow.to(Step.ERROR, ok=False, error=_("{name} updated a different connection than the one being "
                                                         "reconnected. Try again.").format(name=name)), None
        return flow, Finish(item_id=item_id)
    token = _short_text(event.get("public_token"))
    if not token and not flow.reconnecting:
        return flow.to(Step.ERROR, ok=False, error=_("{name} finished without a public token. Try again.").format(
            name=name)), None
    return flow, Finish(public_token=token or None)


def _hosted_exit(flow: Flow, event: Mapping[str, Any]) -> tuple[Flow, Effect | None]:
    """The hosted widget closed: with an error to show, or because the user closed it."""
    name = flow.widget.name if flow.widget else flow.label
    error = event.get("error")
    if isinstance(error, Mapping) and error:
        code = _short_text(error.get("error_code") or error.get("code"))
        text = _short_text(error.get("display_message")) or _short_text(error.get("error_message")) \
            or _short_text(error.get("message"))
        from_code = _ERROR_TEXT.get(code or "")
        detail = str(from_code) if from_code else text or _("it stopped with an error")
        return flow.to(Step.ERROR, ok=False, token=None,
                       error=f"{name}: {detail}" + (f" ({code})" if code and not from_code else "")), None
    return flow.to(Step.READY, token=None, message=_("{name} was closed before a bank was connected.").format(
        name=name)), None


def _hosted_error(flow: Flow, event: Mapping[str, Any]) -> tuple[Flow, Effect | None]:
    """The hosted widget reported an error but stays open (the user may fix it there): show it on the same screen.

    The step_id does not change, so the widget's later success or exit still counts.
    """
    name = flow.widget.name if flow.widget else flow.label
    error = event.get("error") if isinstance(event.get("error"), Mapping) else {}
    text = _short_text(error.get("message")) or _short_text(error.get("display_message")) or _("an error occurred")
    return dataclasses.replace(flow, error=f"{name}: {text}"), None


def _script_error(flow: Flow, _event: Mapping[str, Any]) -> tuple[Flow, Effect | None]:
    name = flow.widget.name if flow.widget else flow.label
    host = flow.widget.host if flow.widget else "its site"
    return flow.to(Step.ERROR, ok=False, token=None,
                   error=f"{name} could not be loaded from {host}. It needs internet access in the browser; "
                         "check the connection (or an ad blocker) and try again."), None


# Codes whose provider text would not tell the user what to do next.
_ERROR_TEXT = {"INVALID_LINK_TOKEN": N_("the session expired. Open it again.")}

_HANDLERS = {
    (Step.CHOOSE, "choose"): _choose,
    (Step.CREDENTIALS, "submit"): _submit,
    (Step.CREDENTIALS, "back"): _back,
    (Step.MFA, "mfa"): _mfa,
    (Step.MFA, "back"): _back,
    (Step.ERROR, "retry"): _retry,
    (Step.ERROR, "back"): _back,
    (Step.DONE, "restart"): _back,
    (Step.READY, "open"): _open,
    (Step.LAUNCH, "open"): _open,
    (Step.LAUNCH, "success"): _hosted_success,
    (Step.LAUNCH, "exit"): _hosted_exit,
    (Step.LAUNCH, "error"): _hosted_error,
    (Step.LAUNCH, "script_error"): _script_error,
}


def check_values(fields: Sequence[Field], raw: object) -> tuple[dict[str, str], str | None]:
    """The submitted values of these fields, or what is wrong with them (missing, too long, not valid)."""
    given = raw if isinstance(raw, Mapping) else {}
    values: dict[str, str] = {}
    missing: list[str] = []
    for field in fields:
        value = given.get(field.name)
        value = value.strip() if isinstance(value, str) else ""
        if len(value) > MAX_VALUE_LENGTH:
            return {}, _("{field} is too long.").format(field=field.label)
        if not value:
            if not field.optional:
                missing.append(field.label)
            continue
        if field.validation and not _matches(field.validation, value):
            return {}, field.validation_message or _("{field} does not look right.").format(field=field.label)
        values[field.name] = value
    if missing:
        return {}, _("Fill in: {fields}.").format(fields=", ".join(missing))
    return values, None


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return True  # a pattern we cannot read is the provider's problem, not the user's


def _short_text(value: object, limit: int = 300) -> str | None:
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else None


# -- outcomes of effects -------------------------------------------------------------------------------

def settled(flow: Flow, state: ConnectionState) -> Flow:
    """The provider's answer after a login or code: ask for MFA, go on to the first sync, or say what failed."""
    institution = Choice.of(state.institution) if state.institution else flow.institution
    if state.status is ConnectionStatus.NEEDS_INPUT and state.mfa_prompt:
        prompt = Prompt(name=state.mfa_prompt.name, label=state.mfa_prompt.label,
                        instructions=state.mfa_prompt.instructions)
        return flow.to(Step.MFA, prompt=prompt, external_id=state.external_id, institution=institution)
    if state.status in (ConnectionStatus.ACTIVE, ConnectionStatus.CONSENT_EXPIRING):
        return flow.to(Step.SYNCING, external_id=state.external_id, institution=institution, prompt=None)
    detail = state.status_detail or state.error_message or _("the bank answered {status}").format(
        status=state.provider_status)
    return flow.to(Step.ERROR, ok=False, prompt=None, institution=institution,
                   external_id=state.external_id if flow.reconnecting else None, error=_could_not(flow, detail))


def failed(flow: Flow, message: str) -> Flow:
    """A provider call failed; `message` is already written for the user."""
    return flow.to(Step.ERROR, ok=False, prompt=None, token=None, error=_could_not(flow, message))


def _could_not(flow: Flow, detail: str) -> str:
    return (_("Could not reconnect: {detail}") if flow.reconnecting else _("Could not connect: {detail}")).format(
        detail=detail)


def launched(flow: Flow, token: str) -> Flow:
    """The hosted widget's token is ready: the browser opens the widget with it."""
    return flow.to(Step.LAUNCH, token=token)


def synced(flow: Flow, *, ok: bool, message: str) -> Flow:
    """The first sync after connecting (or the re-sync after reconnecting) finished."""
    name = flow.institution.name if flow.institution else _("The bank")
    if ok:
        text = (_("{name} reconnected. {message}") if flow.reconnecting else _("{name} connected. {message}"))
    else:
        text = (_("{name} reconnected, but the first sync failed: {message}") if flow.reconnecting else
                _("{name} connected, but the first sync failed: {message}"))
    text = text.format(name=name, message=message)
    return flow.to(Step.DONE, ok=ok, token=None, prompt=None, message=text)


# -- what the browser gets ------------------------------------------------------------------------------

_HINTED = (Step.CHOOSE, Step.CREDENTIALS, Step.MFA, Step.ERROR)
WIDGET_TEXTS = (  # the words of finance/ui/connect_widget/widget.js, translated here (it looks them up by the English)
    N_("Reconnect {name}"), N_("Reconnect this bank"), N_("Connect a bank with {name}"), N_("{name} (sandbox)"),
    N_("Opening {name}…"), N_("Sandbox"), N_("Pick your bank"), N_("Log in again to renew access."),
    N_("Log in to your bank."), N_("Reconnect"), N_("Connect"), N_("Cancel"), N_("Back"), N_("Talking to the bank…"),
    N_("Security code"), N_("{name} sent you a code."), N_("The bank sent you a code."), N_("Send code"),
    N_("Checking the code…"),
    N_("{name} opens in a window where you log in to your bank; your credentials go to {provider}, never to this "
       "app."),
    N_("Reconnect with {name}"), N_("Open {name}"),
    N_("{name} is open. Finish there; this page updates when you are done."), N_("Open {name} again"), N_("Close"),
    N_("Connect another bank"), N_("Try again"), N_("Pick another bank"), N_("Start over"),
    N_("{name} is connected; the first sync is running…"), N_("The bank is connected; the first sync is running…"),
    N_("Working…"), N_("Offline sandbox"),
)


def widget_data(flow: Flow) -> dict[str, Any]:
    """The JSON the widget draws: only what the current screen needs, never a provider secret."""
    data: dict[str, Any] = {
        "kind": flow.kind, "provider": flow.provider, "label": flow.label, "step": flow.step.value,
        "step_id": flow.step_id, "mode": flow.mode, "message": flow.message, "error": flow.error, "ok": flow.ok,
        "institution": dataclasses.asdict(flow.institution) if flow.institution else None,
        # Offline is always a sandbox: say which logins work while the user picks and logs in.
        "hint": str(flow.hint) if flow.hint and flow.widget is None and flow.step in _HINTED else None,
        "hosted_name": flow.widget.name if flow.widget else None,
        "texts": {text.message: str(text) for text in WIDGET_TEXTS},
    }
    if flow.step is Step.CHOOSE:
        data["institutions"] = [dataclasses.asdict(c) for c in flow.institutions or ()]
    elif flow.step is Step.CREDENTIALS:
        data["fields"] = [dataclasses.asdict(f) for f in flow.fields or ()]
    elif flow.step is Step.MFA and flow.prompt:
        data["prompt"] = dataclasses.asdict(flow.prompt)
    elif flow.step is Step.LAUNCH and flow.widget is not None:
        data["launch"] = {
            "script": flow.widget.script, "token": flow.token, "include_sandbox": True,
            "update_item": flow.external_id if flow.reconnecting and flow.widget.returns_item else None,
        }
    return data
