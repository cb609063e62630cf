"""The demo's local receivers: an SMTP server storing .eml files and a webhook receiver that
verifies Standard Webhooks signatures and stores what it receives."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _MailStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            self.count += 1
            number = self.count
        recipients = "_".join(r.split("@")[0] for r in envelope.rcpt_tos)[:40]
        (self.folder / f"{number:05d}-{recipients}.eml").write_bytes(envelope.content)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MailServer:
    """aiosmtpd on 127.0.0.1: every message is written to folder as NNNNN-recipient.eml."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.store = _MailStore(folder)
        self.controller = Controller(self.store, hostname="127.0.0.1", port=port or free_port())

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def verify_signature(secrets: list[str], headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks verification: any v1 signature over id.timestamp.body by any secret."""
    signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
    offered = [
        part.split(",", 1)[1]
        for part in headers.get("webhook-signature", "").split()
        if part.startswith("v1,")
    ]
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return True
    return False


class WebhookReceiver:
    """An HTTP receiver on 127.0.0.1 for several endpoints (/hooks/<name>), each with its own
    secret; stores every request as JSON with the verification result."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.secrets: dict[str, list[str]] = {}
        self.received = 0
        self.verified = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                name = self.path.rstrip("/").rsplit("/", 1)[-1]
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = verify_signature(receiver.secrets.get(name, []), headers, body)
                receiver.record(name, headers, body, ok)
                self.send_response(200 if ok else 401)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    def record(self, name: str, headers: dict[str, str], body: bytes, ok: bool) -> None:
        with self._lock:
            self.received += 1
            self.verified += ok
            number = self.received
        document = {
            "endpoint": name,
            "signature_valid": ok,
            "webhook-id": headers.get("webhook-id"),
            "webhook-timestamp": headers.get("webhook-timestamp"),
            "webhook-signature": headers.get("webhook-signature"),
            "body": json.loads(body or b"null"),
        }
        (self.folder / f"{number:05d}-{name}.json").write_text(json.dumps(document, indent=2))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
