"""Email over SMTP (STARTTLS, implicit TLS or plain to a local relay), one message per send."""

from __future__ import annotations

import email.message
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Literal

from alerts.transports.base import Outcome

Security = Literal["starttls", "tls", "none"]
_MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """One alert email to one address; `message_id` like `<delivery-uuid@sentinel-nps>`.

    The app derives `message_id` from the delivery id, so a retried send carries the same
    Message-ID and the recipient's mail system can drop the duplicate.
    """

    to: str
    subject: str
    text: str
    html: str
    message_id: str


class EmailTransport:
    """Send through one SMTP server and classify the reply.

    `security`: "starttls" (submission, usually port 587) upgrades the connection before
    anything else and fails if the server does not offer STARTTLS; "tls" is implicit TLS
    (usually 465); "none" is plain SMTP, meant for a relay on the same host or network. With
    TLS the certificate is verified against `host` by `ssl_context` (default:
    `ssl.create_default_context()`). AUTH is used when `username` is given; smtplib only logs
    in after TLS when security is not "none".

    Classification: an SMTP 5xx reply is permanent (no retry; `status` is the code), a 4xx
    reply, connection, timeout and TLS errors are transient. The 5xx rule holds for every
    stage, so a 535 (authentication refused) is permanent too: it needs a person, and an
    admin replays the dead letters once the credentials are fixed. `timeout` is in seconds
    per socket operation.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Security,
        username: str | None = None,
        password: str | None = None,
        mail_from: str,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        helo_name: str | None = None,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be starttls, tls or none, not {security!r}")
        self.host = host
        self.port = port
        self.security: Security = security
        self.username = username
        self.password = password
        self.mail_from = mail_from
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        # smtplib's default EHLO name comes from socket.getfqdn(), a DNS lookup per connection.
        self.helo_name = helo_name or socket.gethostname() or "localhost"

    def build(self, message: EmailMessage) -> email.message.EmailMessage:
        """The MIME message: multipart/alternative with the text part first, then HTML.

        Raises ValueError for a header value that would break the header block (CR, LF) or a
        Message-ID not in `<left@right>` form.
        """
        if not _MESSAGE_ID.match(message.message_id):
            raise ValueError(f"Message-ID must look like <id@domain>: {message.message_id!r}")
        for name, value in (("To", message.to), ("Subject", message.subject)):
            if "\r" in value or "\n" in value:
                raise ValueError(f"{name} contains a line break")
        mime = email.message.EmailMessage()
        mime["From"] = self.mail_from
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = format_datetime(datetime.now(UTC))
        mime["Message-ID"] = message.message_id
        mime.set_content(message.text)
        mime.add_alternative(message.html, subtype="html")
        return mime

    def send(self, message: EmailMessage) -> Outcome:
        """Deliver `message` to its one recipient; never raises for SMTP or network errors."""
        try:
            mime = self.build(message)
        except ValueError as error:
            return Outcome(ok=False, permanent=True, detail=f"invalid message: {error}")
        try:
            smtp = self._connect()
        except smtplib.SMTPResponseException as error:
            return _reply_outcome(error.smtp_code, error.smtp_error, "on connect")
        except (smtplib.SMTPException, OSError) as error:
            return _network_outcome(error, f"cannot connect to {self.host}:{self.port}")
        try:
            return self._deliver(smtp, mime, message.to)
        finally:
            try:
                smtp.quit()  # the message is already accepted (or refused); errors here don't count
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.helo_name,
                timeout=self.timeout,
                context=self.ssl_context,
            )
        return smtplib.SMTP(
            self.host, self.port, local_hostname=self.helo_name, timeout=self.timeout
        )

    def _deliver(self, smtp: smtplib.SMTP, mime: email.message.EmailMessage, to: str) -> Outcome:
        stage = "on EHLO"
        try:
            smtp.ehlo()
            if self.security == "starttls":
                stage = "on STARTTLS"
                if not smtp.has_extn("starttls"):
                    return Outcome(ok=False, detail="server does not offer STARTTLS; not sending")
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            if self.username is not None:
                stage = "on AUTH"
                smtp.login(self.username, self.password or "")
            stage = "on send"
            refused = smtp.send_message(mime, from_addr=self.mail_from, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()), (0, b""))
            return _reply_outcome(code, text, f"for recipient {to}")
        except smtplib.SMTPResponseException as error:
            return _reply_outcome(error.smtp_code, error.smtp_error, stage)
        except (smtplib.SMTPException, OSError) as error:
            return _network_outcome(error, stage)
        if refused:  # only possible with several recipients; kept for completeness
            code, text = next(iter(refused.values()))
            return _reply_outcome(code, text, f"for recipient {to}")
        return Outcome(ok=True, status=250, detail=f"accepted by {self.host}")


def _reply_outcome(code: int, text: bytes | str, stage: str) -> Outcome:
    """4xx transient, 5xx permanent (RFC 5321 4.2.1); anything else is treated as transient."""
    message = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    detail = f"SMTP {code} {stage}: {' '.join(message.split())}"[:500]
    return Outcome(ok=False, permanent=500 <= code < 600, status=code, detail=detail)


def _network_outcome(error: BaseException, stage: str) -> Outcome:
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = f"TLS certificate verification failed: {error.verify_message or error}"
    elif isinstance(error, ssl.SSLError):
        reason = f"TLS error: {error}"
    elif isinstance(error, TimeoutError):
        reason = "timed out"
    else:
        reason = f"{type(error).__name__}: {error}"
    return Outcome(ok=False, detail=f"{stage}: {reason}"[:500])
