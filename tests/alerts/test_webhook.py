"""Webhook transport against a real HTTP(S) receiver on 127.0.0.1; signatures checked with the
independent `standardwebhooks` package."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from alerts.ssrf import parse_networks
from alerts.transports.base import Outcome
from alerts.transports.webhook import (
    WebhookTransport,
    new_secret,
    parse_retry_after,
    sign,
    signature_header,
)

LOOPBACK = parse_networks("127.0.0.0/8")
BODY = json.dumps({"alert": {"id": 7, "level": "warning", "title": "Nitazene cluster"}}).encode()
HOST = "hooks.sentinel.test"  # resolved by the tests' fake resolver only


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    server_name: str | None = None


@dataclass
class Receiver:
    port: int
    scheme: str
    requests: list[Received] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


RETRY_DATE = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)


def make_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            receiver.requests.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            route = self.path.split("?")[0]
            if route == "/slow":
                time.sleep(1.0)
            if route == "/huge":
                self._reply(200, b"x" * 1_000_000)
            elif route == "/gone":
                self._reply(410, b"endpoint removed")
            elif route == "/busy":
                self._reply(429, b"slow down", {"Retry-After": "120"})
            elif route == "/unavailable":
                self._reply(503, b"", {"Retry-After": format_datetime(RETRY_DATE, usegmt=True)})
            elif route == "/redirect":
                self._reply(307, b"", {"Location": receiver.url("/ok")})
            elif route.startswith("/status/"):
                self._reply(int(route.rsplit("/", 1)[1]), b"status as asked")
            else:
                self._reply(200, b'{"received": true}')

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading, as the capped and timed-out tests intend

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # failed TLS handshakes are expected in the certificate tests


def serve(receiver: Receiver, tls: ssl.SSLContext | None) -> Iterator[Receiver]:
    server = QuietServer(("127.0.0.1", 0), make_handler(receiver))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve(Receiver(port=0, scheme="http"), tls=None)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_receiver(ca: trustme.CA) -> Iterator[Receiver]:
    receiver = Receiver(port=0, scheme="https")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)

    def remember_server_name(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        receiver.server_names.append(name)

    context.sni_callback = remember_server_name
    yield from serve(receiver, tls=context)


def resolve_to_loopback(host: str, port: int) -> list[str]:
    assert host == HOST, f"unexpected lookup of {host}"
    return ["127.0.0.1"]


def transport(**overrides: object) -> WebhookTransport:
    options: dict[str, object] = {"allowed_networks": LOOPBACK, "timeout": 5.0}
    options.update(overrides)
    return WebhookTransport(**options)  # type: ignore[arg-type]


def send(sender: WebhookTransport, url: str, secrets: list[str] | None = None) -> Outcome:
    return sender.send(
        url,
        secrets=secrets or [new_secret()],
        msg_id="msg_2Lz8delivery42",
        timestamp=int(time.time()),
        body=BODY,
    )


# ---- signing -------------------------------------------------------------------------------


def test_new_secret_has_the_prefix_and_at_least_24_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert new_secret() != secret


def test_signature_matches_the_reference_implementation() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    moment = datetime.fromtimestamp(1_614_265_330, tz=UTC)
    expected = Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", moment, BODY.decode())
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, BODY) == expected


def test_signature_header_signs_once_per_secret() -> None:
    old, new = new_secret(), new_secret()
    header = signature_header([new, old], "msg_1", 1_700_000_000, BODY)
    assert header.split(" ") == [sign(s, "msg_1", 1_700_000_000, BODY) for s in (new, old)]
    with pytest.raises(ValueError, match="at least one"):
        signature_header([], "msg_1", 1_700_000_000, BODY)


def test_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError, match="base64"):
        sign("whsec_not base64!", "msg_1", 1, BODY)


# ---- delivery to a real receiver ---------------------------------------------------------


def test_delivered_request_verifies_with_standardwebhooks(receiver: Receiver) -> None:
    secret = new_secret()
    outcome = transport().send(
        receiver.url("/hook?tenant=health"),
        secrets=[secret],
        msg_id="msg_delivery_42",
        timestamp=int(time.time()),
        body=BODY,
    )

    assert outcome.ok
    assert outcome.status == 200
    [request] = receiver.requests
    assert request.path == "/hook?tenant=health"
    assert request.headers["webhook-id"] == "msg_delivery_42"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Sentinel-NPS")
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert Webhook(secret).verify(request.body, request.headers) == json.loads(BODY)


def test_during_rotation_both_secrets_verify(receiver: Receiver) -> None:
    old, new = new_secret(), new_secret()
    assert send(transport(), receiver.url("/hook"), secrets=[new, old]).ok
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(request.body, request.headers)


def test_gone_is_permanent_and_asks_for_the_endpoint_to_be_disabled(receiver: Receiver) -> None:
    outcome = transport().send(
        receiver.url("/gone"), secrets=[new_secret()], msg_id="m1", timestamp=1, body=BODY
    )
    assert (outcome.ok, outcome.permanent, outcome.status) == (False, True, 410)
    assert "disabled" in outcome.detail
    assert "endpoint removed" in outcome.detail


def test_too_many_requests_honours_retry_after_seconds(receiver: Receiver) -> None:
    outcome = transport().send(
        receiver.url("/busy"), secrets=[new_secret()], msg_id="m1", timestamp=1, body=BODY
    )
    assert (outcome.ok, outcome.permanent, outcome.status) == (False, False, 429)
    assert outcome.retry_after == 120


def test_unavailable_honours_retry_after_http_date(receiver: Receiver) -> None:
    now = RETRY_DATE.timestamp() - 90
    outcome = transport(clock=lambda: now).send(
        receiver.url("/unavailable"), secrets=[new_secret()], msg_id="m1", timestamp=1, body=BODY
    )
    assert (outcome.permanent, outcome.status, outcome.retry_after) == (False, 503, 90)


@pytest.mark.parametrize("status", [500, 502, 400, 401, 403, 404, 422])
def test_server_and_client_errors_other_than_gone_are_retried(
    receiver: Receiver, status: int
) -> None:
    outcome = transport().send(
        receiver.url(f"/status/{status}"),
        secrets=[new_secret()],
        msg_id="m",
        timestamp=1,
        body=BODY,
    )
    assert (outcome.ok, outcome.permanent, outcome.status) == (False, False, status)
    assert outcome.retry_after is None
    assert f"HTTP {status}: status as asked" in outcome.detail


def test_redirect_is_not_followed(receiver: Receiver) -> None:
    outcome = transport().send(
        receiver.url("/redirect"), secrets=[new_secret()], msg_id="m", timestamp=1, body=BODY
    )
    assert (outcome.ok, outcome.permanent, outcome.status) == (False, False, 307)
    assert "redirect not followed" in outcome.detail
    assert [request.path for request in receiver.requests] == ["/redirect"]


def test_slow_receiver_hits_the_timeout(receiver: Receiver) -> None:
    started = time.monotonic()
    outcome = transport(timeout=0.3).send(
        receiver.url("/slow"), secrets=[new_secret()], msg_id="m", timestamp=1, body=BODY
    )
    assert time.monotonic() - started < 0.9
    assert (outcome.ok, outcome.permanent) == (False, False)
    assert "timed out" in outcome.detail


def test_huge_response_body_is_capped(receiver: Receiver) -> None:
    outcome = transport(max_response_bytes=100).send(
        receiver.url("/huge"), secrets=[new_secret()], msg_id="m", timestamp=1, body=BODY
    )
    assert outcome.ok
    assert outcome.detail.count("x") == 100
    assert outcome.detail.endswith("[truncated]")


def test_refused_connection_is_transient() -> None:
    port = free_port()  # bound and closed again: nothing listens there now
    outcome = transport().send(
        f"http://127.0.0.1:{port}/hook", secrets=[new_secret()], msg_id="m", timestamp=1, body=BODY
    )
    assert (outcome.ok, outcome.permanent) == (False, False)
    assert "cannot connect" in outcome.detail


# ---- SSRF --------------------------------------------------------------------------------


def test_loopback_is_refused_unless_allow_listed(receiver: Receiver) -> None:
    outcome = WebhookTransport().send(
        receiver.url("/hook"), secrets=[new_secret()], msg_id="m", timestamp=1, body=BODY
    )
    assert (outcome.ok, outcome.permanent) == (False, True)
    assert "refused" in outcome.detail
    assert receiver.requests == []


def test_url_is_checked_again_before_each_attempt(receiver: Receiver) -> None:
    answers = [["127.0.0.1"], ["10.0.0.1"]]

    def rebinding(host: str, port: int) -> list[str]:
        return answers.pop(0)

    sender = transport(resolve=rebinding)
    url = receiver.url("/hook", host=HOST)
    assert send(sender, url).ok
    outcome = sender.send(url, secrets=[new_secret()], msg_id="m", timestamp=1, body=BODY)
    assert (outcome.ok, outcome.permanent) == (False, True)
    assert "10.0.0.1" in outcome.detail
    assert len(receiver.requests) == 1


def test_connection_goes_to_the_checked_address_with_the_host_name(receiver: Receiver) -> None:
    # The name exists only in the fake resolver: success proves nothing else looked it up.
    outcome = send(transport(resolve=resolve_to_loopback), receiver.url("/hook", host=HOST))
    assert outcome.ok
    assert receiver.requests[0].headers["host"] == f"{HOST}:{receiver.port}"


def test_unresolvable_host_is_transient() -> None:
    def failing(host: str, port: int) -> list[str]:
        raise OSError("Temporary failure in name resolution")

    outcome = send(transport(resolve=failing), f"https://{HOST}/hook")
    assert (outcome.ok, outcome.permanent) == (False, False)
    assert "did not resolve" in outcome.detail


# ---- https: SNI and certificate verification against the host name ----------------------


def test_https_verifies_the_certificate_for_the_host_name(
    tls_receiver: Receiver, ca: trustme.CA
) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    sender = transport(resolve=resolve_to_loopback, ssl_context=context)

    outcome = send(sender, tls_receiver.url("/hook", host=HOST))

    assert outcome.ok, outcome
    assert tls_receiver.server_names == [HOST]
    assert tls_receiver.requests[0].headers["host"] == f"{HOST}:{tls_receiver.port}"


def test_https_to_an_untrusted_certificate_fails_transiently(tls_receiver: Receiver) -> None:
    sender = transport(resolve=resolve_to_loopback)  # system CAs only: the test CA is unknown

    outcome = send(sender, tls_receiver.url("/hook", host=HOST))

    assert (outcome.ok, outcome.permanent) == (False, False)
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.detail
    assert tls_receiver.requests == []


def test_https_certificate_for_another_name_is_refused(
    tls_receiver: Receiver, ca: trustme.CA
) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)

    def other_name(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    sender = transport(resolve=other_name, ssl_context=context)
    outcome = send(sender, tls_receiver.url("/hook", host="other.sentinel.test"))

    assert not outcome.ok
    assert (outcome.ok, outcome.permanent) == (False, False)
    assert "not valid for 'other.sentinel.test'" in outcome.detail
    assert tls_receiver.requests == []


# ---- Retry-After parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Sat, 28 Nov 2026 05:00:00 GMT", 60.0),
        ("Sat, 28 Nov 2026 04:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    now = RETRY_DATE.timestamp() - 60
    assert parse_retry_after(value, now=now) == expected


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("msg_id", ["", "msg 1", "msg_1\r\nx-injected: 1"])
def test_malformed_message_id_is_a_caller_error(msg_id: str) -> None:
    with pytest.raises(ValueError, match="msg_id"):
        WebhookTransport().send(
            "https://hooks.example.org/",
            secrets=[new_secret()],
            msg_id=msg_id,
            timestamp=1,
            body=b"",
        )
