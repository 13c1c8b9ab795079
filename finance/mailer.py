"""Alerts by e-mail through the standard library's smtplib: one plain-text message per batch of new alerts.

Bank text travels only in the plain-text body (never in a header, never as HTML), so a merchant's name can neither
add a recipient nor render as markup. The password is handed to the server and to nothing else: failures are
reported by their kind and the server's reply, which never holds it.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from finance.alerts import KINDS, Alert
from finance.config import SmtpSettings
from finance.i18n import _, ngettext

TIMEOUT_SECONDS = 10.0
IMPLICIT_TLS_PORT = 465
MAX_ERROR_LENGTH = 300


class SmtpFailed(Exception):
    """The SMTP server could not take the message; the text says why, without the password."""


def build_message(smtp: SmtpSettings, alerts: Sequence[Alert]) -> EmailMessage:
    """The plain-text e-mail of these alerts; its subject says only how many there are."""
    message = EmailMessage()
    message["Subject"] = ngettext("Open Finance dashboard: {count} new alert",
                                  "Open Finance dashboard: {count} new alerts", len(alerts)).format(count=len(alerts))
    message["From"] = smtp.sender
    message["To"] = ", ".join(smtp.recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
    lines = []
    for alert in alerts:
        lines += [f"[{KINDS.get(alert.kind, alert.kind)}] {alert.title}", f"    {alert.detail}", ""]
    lines.append(_("Open the Alerts page of the dashboard to mark them read or turn a kind of alert off."))
    message.set_content("\n".join(lines), subtype="plain", charset="utf-8")
    return message


def send_alerts(smtp: SmtpSettings, alerts: Sequence[Alert]) -> None:
    """E-mail these alerts in one message; raises SmtpFailed (with a reason fit for logs) when that fails."""
    try:
        message = build_message(smtp, alerts)
    except ValueError as exc:  # an address the e-mail headers cannot hold
        raise SmtpFailed(describe(exc, smtp)) from None
    send(smtp, message)


def send(smtp: SmtpSettings, message: EmailMessage) -> None:
    """Deliver one message; raises SmtpFailed (with a reason fit for logs) when the server cannot be used."""
    try:
        if smtp.port == IMPLICIT_TLS_PORT:
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=TIMEOUT_SECONDS,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_SECONDS)
        with client:
            if smtp.starttls and smtp.port != IMPLICIT_TLS_PORT:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise SmtpFailed(describe(exc, smtp)) from None


def describe(exc: BaseException, smtp: SmtpSettings) -> str:
    """`<kind of failure>: <the server's reply or the OS error>`, short, with the password masked if echoed."""
    text = f"{type(exc).__name__}: {exc}"
    if smtp.password:
        text = text.replace(smtp.password, "***")
    return text[:MAX_ERROR_LENGTH]
