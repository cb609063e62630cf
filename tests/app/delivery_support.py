"""Receivers and factories for the delivery tests: a real SMTP server (aiosmtpd) and a real
HTTP receiver, both on 127.0.0.1 in this process, an alert factory and a fake clock."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.levels import AlertLevel
from app.db import utc_now
from app.models import Alert, Substance
from app.models.enums import AlertStatus, SubjectType
from app.settings import Settings

SUBSTANCE = "Isotonitazene"  # a nitazene NPS of the reference library


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---- SMTP ---------------------------------------------------------------------------------


@dataclass
class SmtpRecorder:
    """aiosmtpd handler: records accepted messages; answers DATA from `data_replies` first.

    With `hold` set, DATA is recorded in `held` and then not answered until `release` is set
    (the crash test kills the sender meanwhile).
    """

    messages: list[Any] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    attempts: int = 0
    hold: bool = False
    held: list[Any] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.attempts += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        if self.hold:
            self.held.append(envelope)
            while not self.release.is_set():
                await asyncio.sleep(0.02)
            return "451 4.3.0 receiver restarted"
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[tuple[Controller, SmtpRecorder]]:
    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, recorder
    finally:
        recorder.release.set()
        controller.stop()


# ---- HTTP receiver ------------------------------------------------------------------------


@dataclass
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HookReceiver:
    """Records every POST; answers with `statuses[path]` (popped; the last one repeats), 204
    otherwise, adding `extra_headers[path]`. With `hold` set, a request is recorded and then
    held until `release` is set."""

    port: int = 0
    requests: list[Hook] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    extra_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def status_for(self, path: str) -> int:
        with self.lock:
            queue = self.statuses.get(path)
            if not queue:
                return 204
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def to(self, path: str) -> list[Hook]:
        return [hook for hook in self.requests if hook.path == path]


def _handler(receiver: HookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {key.lower(): value for key, value in self.headers.items()}
            with receiver.lock:
                receiver.requests.append(Hook(self.path, headers, body))
            if receiver.hold:
                receiver.release.wait(30)
            status = receiver.status_for(self.path)
            self.send_response(status)
            for name, value in receiver.extra_headers.get(self.path, {}).items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

    return Handler


@contextmanager
def hook_receiver() -> Iterator[HookReceiver]:
    receiver = HookReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()


# ---- factories ----------------------------------------------------------------------------


def delivery_settings(settings: Settings, smtp_port: int) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allowed_networks": "127.0.0.0/8",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_security": "none",
        }
    )


def make_alert(session: Session, **overrides: Any) -> Alert:
    """A new (unpublished) warning-level alert about the reference nitazene, in DE and FR."""
    substance = session.scalar(select(Substance).where(Substance.name == SUBSTANCE))
    assert substance is not None, "the reference library is not loaded"
    now = utc_now()
    count = len(session.scalars(select(Alert.id)).all())
    values: dict[str, Any] = {
        "dedup_key": f"substance:{substance.inchikey}#{count + 1}",
        "subject_key": f"substance:{substance.inchikey}",
        "subject_type": SubjectType.SUBSTANCE,
        "substance_id": substance.id,
        "level": AlertLevel.WARNING,
        "status": AlertStatus.NEW,
        "score": 71.5,
        "title": f"Warning: {substance.name}",
        "summary": f"{substance.name} scored 71.5/100 (detected in DE, FR).",
        "components": [
            {"name": "spread", "value": 0.5, "weight": 20.0, "reason": "detected in 2 countries"},
            {"name": "harm", "value": 0.8, "weight": 30.0, "reason": "2 deaths"},
        ],
        "countries": ["DE", "FR"],
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    alert = Alert(**values)
    session.add(alert)
    session.flush()
    return alert


def create_subscriber(
    client: TestClient,
    admin: str,
    name: str,
    channels: list[dict[str, str]],
    kind: str = "health",
    **filters: Any,
) -> dict[str, Any]:
    response = client.post(
        "/v1/subscribers",
        json={"name": name, "kind": kind, "filters": filters, "channels": channels},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def channel(subscriber: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in subscriber["channels"] if c["type"] == kind)
    return found


class FakeClock:
    """A settable clock for deliver_due(now=...)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.at = start or utc_now()

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
