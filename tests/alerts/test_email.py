"""Email transport against a real in-process SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage as MimeMessage
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.transports.email import EmailMessage, EmailTransport, Security

MESSAGE = EmailMessage(
    to="officer@health.example",
    subject="WARNING: new nitazene analogue detected in 3 countries",
    text="A nitazene analogue was detected in DE, FR and NL.\n",
    html="<p>A <b>nitazene</b> analogue was detected in DE, FR and NL.</p>\n",
    message_id="<2f1c7a3e-8d5b-4c1e-9a0f-0d3b9e6c4a21@sentinel-nps>",
)
MAIL_FROM = "alerts@sentinel.example"


@dataclass
class Recorder:
    """An aiosmtpd handler: records accepted messages; can answer RCPT or DATA as told."""

    messages: list[Any] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd calls
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def check_login(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"sentinel", b"correct horse")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """Verifies certificates (the default context) and trusts the test CA."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def run(controller: Controller) -> Iterator[Controller]:
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def plain_server() -> Iterator[Controller]:
    yield from run(Controller(Recorder(), hostname="127.0.0.1", port=free_port()))


@pytest.fixture
def starttls_server(server_context: ssl.SSLContext) -> Iterator[Controller]:
    controller = Controller(
        Recorder(),
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_context,
        require_starttls=True,
        authenticator=check_login,
    )
    yield from run(controller)


@pytest.fixture
def implicit_tls_server(server_context: ssl.SSLContext) -> Iterator[Controller]:
    controller = Controller(
        Recorder(), hostname="127.0.0.1", port=free_port(), ssl_context=server_context
    )
    yield from run(controller)


def transport(
    controller: Controller, security: Security = "none", **options: Any
) -> EmailTransport:
    return EmailTransport(
        host="127.0.0.1",
        port=controller.port,
        security=security,
        mail_from=MAIL_FROM,
        timeout=5.0,
        helo_name="sentinel.test",
        **options,
    )


def received(controller: Controller) -> list[MimeMessage]:
    recorder: Recorder = controller.handler
    return [
        email.message_from_bytes(envelope.content, _class=MimeMessage, policy=email.policy.default)
        for envelope in recorder.messages
    ]


def test_message_arrives_with_headers_and_both_parts(plain_server: Controller) -> None:
    outcome = transport(plain_server).send(MESSAGE)

    assert outcome.ok, outcome
    [envelope] = plain_server.handler.messages
    assert envelope.mail_from == MAIL_FROM
    assert envelope.rcpt_tos == [MESSAGE.to]
    [message] = received(plain_server)
    assert message["Message-ID"] == MESSAGE.message_id
    assert message["From"] == MAIL_FROM
    assert message["To"] == MESSAGE.to
    assert message["Subject"] == MESSAGE.subject
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    # SMTP carries lines ending in CRLF
    assert text.get_content().replace("\r\n", "\n") == MESSAGE.text
    assert html.get_content().replace("\r\n", "\n") == MESSAGE.html


def test_transient_451_then_250_is_delivered_once(plain_server: Controller) -> None:
    plain_server.handler.data_replies.append("451 4.3.0 Try again later")
    sender = transport(plain_server)

    first = sender.send(MESSAGE)
    second = sender.send(MESSAGE)

    assert (first.ok, first.permanent, first.status) == (False, False, 451)
    assert "451" in first.detail
    assert "Try again later" in first.detail
    assert second.ok
    assert [m["Message-ID"] for m in received(plain_server)] == [MESSAGE.message_id]


def test_550_for_the_recipient_is_permanent(plain_server: Controller) -> None:
    plain_server.handler.rcpt_replies.append("550 5.1.1 Mailbox does not exist")

    outcome = transport(plain_server).send(MESSAGE)

    assert (outcome.ok, outcome.permanent, outcome.status) == (False, True, 550)
    assert "550" in outcome.detail
    assert "Mailbox does not exist" in outcome.detail
    assert MESSAGE.to in outcome.detail
    assert received(plain_server) == []


def test_554_on_data_is_permanent(plain_server: Controller) -> None:
    plain_server.handler.data_replies.append("554 5.7.1 Message rejected as spam")
    outcome = transport(plain_server).send(MESSAGE)
    assert (outcome.ok, outcome.permanent, outcome.status) == (False, True, 554)


def test_451_for_the_recipient_is_transient(plain_server: Controller) -> None:
    plain_server.handler.rcpt_replies.append("451 4.7.1 Greylisted, come back later")
    outcome = transport(plain_server).send(MESSAGE)
    assert (outcome.ok, outcome.permanent, outcome.status) == (False, False, 451)


def test_starttls_with_a_trusted_certificate_and_auth(
    starttls_server: Controller, client_context: ssl.SSLContext
) -> None:
    sender = transport(
        starttls_server,
        "starttls",
        ssl_context=client_context,
        username="sentinel",
        password="correct horse",
    )
    outcome = sender.send(MESSAGE)
    assert outcome.ok, outcome
    assert [m["Message-ID"] for m in received(starttls_server)] == [MESSAGE.message_id]


def test_starttls_with_wrong_password_is_permanent(
    starttls_server: Controller, client_context: ssl.SSLContext
) -> None:
    sender = transport(
        starttls_server, "starttls", ssl_context=client_context, username="sentinel", password="x"
    )
    outcome = sender.send(MESSAGE)
    assert (outcome.ok, outcome.permanent, outcome.status) == (False, True, 535)
    assert "on AUTH" in outcome.detail


def test_starttls_to_an_untrusted_certificate_fails_transiently(
    starttls_server: Controller,
) -> None:
    outcome = transport(starttls_server, "starttls").send(MESSAGE)  # default context: system CAs
    assert (outcome.ok, outcome.permanent) == (False, False)
    assert "certificate verification failed" in outcome.detail
    assert received(starttls_server) == []


def test_starttls_required_but_not_offered_sends_nothing(plain_server: Controller) -> None:
    outcome = transport(plain_server, "starttls").send(MESSAGE)
    assert (outcome.ok, outcome.permanent) == (False, False)
    assert "does not offer STARTTLS" in outcome.detail
    assert received(plain_server) == []


def test_implicit_tls_with_a_trusted_certificate(
    implicit_tls_server: Controller, client_context: ssl.SSLContext
) -> None:
    outcome = transport(implicit_tls_server, "tls", ssl_context=client_context).send(MESSAGE)
    assert outcome.ok, outcome
    assert len(received(implicit_tls_server)) == 1


def test_implicit_tls_to_an_untrusted_certificate_fails_transiently(
    implicit_tls_server: Controller,
) -> None:
    outcome = transport(implicit_tls_server, "tls").send(MESSAGE)
    assert (outcome.ok, outcome.permanent) == (False, False)
    assert "certificate verification failed" in outcome.detail
    assert received(implicit_tls_server) == []


def test_refused_connection_is_transient() -> None:
    sender = EmailTransport(
        host="127.0.0.1", port=free_port(), security="none", mail_from=MAIL_FROM, timeout=2.0
    )
    outcome = sender.send(MESSAGE)
    assert (outcome.ok, outcome.permanent) == (False, False)
    assert "cannot connect" in outcome.detail


@pytest.mark.parametrize(
    "message",
    [
        replace(MESSAGE, subject="hi\r\nBcc: everyone@example.org"),
        replace(MESSAGE, to="a@example.org\nBcc: b@example.org"),
        replace(MESSAGE, message_id="no-brackets"),
    ],
)
def test_malformed_message_is_permanent_and_not_sent(
    plain_server: Controller, message: EmailMessage
) -> None:
    outcome = transport(plain_server).send(message)
    assert (outcome.ok, outcome.permanent) == (False, True)
    assert "invalid message" in outcome.detail
    assert received(plain_server) == []


def test_unknown_security_is_refused() -> None:
    with pytest.raises(ValueError, match="security"):
        EmailTransport(host="h", port=25, security="ssl", mail_from=MAIL_FROM)  # type: ignore[arg-type]


def test_auth_over_plain_smtp_to_a_local_relay() -> None:
    relay = Controller(
        Recorder(),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=check_login,
        auth_require_tls=False,
    )
    for controller in run(relay):
        sender = transport(controller, "none", username="sentinel", password="correct horse")
        assert sender.send(MESSAGE).ok
        assert len(received(controller)) == 1


def test_server_that_never_greets_times_out_transiently() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # the kernel accepts the connection; nobody ever answers
        sender = EmailTransport(
            host="127.0.0.1",
            port=listener.getsockname()[1],
            security="none",
            mail_from=MAIL_FROM,
            timeout=0.3,
        )
        outcome = sender.send(MESSAGE)
    assert (outcome.ok, outcome.permanent) == (False, False)
    assert "timed out" in outcome.detail
