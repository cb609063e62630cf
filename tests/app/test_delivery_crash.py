"""The SIGKILL proof: a delivery process killed after sending but before recording the outcome
loses nothing. A fresh process, once the lease has expired, sends every message again with the
same id (webhook-id, Message-ID) and every delivery ends delivered.

Real child processes (`python -c`) run app.delivery.deliver_due against the test database (a
SQLite file, and PostgreSQL); the SMTP server and the webhook receiver run in this process on
127.0.0.1. The test kills two delivery processes with SIGKILL, at two points, before a third
one finishes the work:
1. the receivers have each whole request and hold their reply until the sender is dead (it
   never learns the outcome);
2. after its lease ran out, a second process resends; the receivers answer 2xx/250, and the
   process is stopped (a wrapper around app.delivery._record signals and waits) with every
   outcome in hand but none written;
3. after that lease too, a third process resends everything and records it.
The clocks of processes 2 and 3 run ahead (deliver_due(now=...)) instead of waiting the lease.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from app.db import utc_now
from app.delivery import deliver_due
from app.models import Delivery
from app.models.enums import DeliveryStatus
from app.settings import Settings
from reference_standards import Library
from tests.app.delivery_support import (
    HookReceiver,
    SmtpRecorder,
    create_subscriber,
    delivery_settings,
    hook_receiver,
    make_alert,
    smtp_server,
    wait_for,
)
from tests.conftest import auth

REPOSITORY = Path(__file__).resolve().parents[2]
CHILD = """
import json, sys, time
from datetime import timedelta

import app.delivery
from app.db import make_engine, make_sessionmaker, utc_now
from app.settings import Settings

stop_before_record, offset = sys.argv[1] == "before-record", float(sys.argv[2])
if stop_before_record:
    def record_never(*args, **kwargs):
        print("sent, outcome not recorded", flush=True)
        time.sleep(60)  # the test kills this process with SIGKILL meanwhile

    app.delivery._record = record_never
settings = Settings()
sessions = make_sessionmaker(make_engine(settings.database_url))
result = app.delivery.deliver_due(
    sessions, settings, now=lambda: utc_now() + timedelta(seconds=offset)
)
print(json.dumps({"claimed": result.claimed, "delivered": result.delivered}), flush=True)
"""


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, SmtpRecorder]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    with hook_receiver() as receiver:
        yield receiver


@pytest.fixture
def settings(settings: Settings, smtp: tuple[Controller, SmtpRecorder]) -> Settings:
    return delivery_settings(settings, smtp[0].port)


def start_child(settings: Settings, mode: str, clock_offset: float) -> subprocess.Popen[str]:
    """A delivery process of its own, configured through the SENTINEL_* environment."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPOSITORY),
        "SENTINEL_DATABASE_URL": settings.database_url,
        "SENTINEL_SECRET_KEY": settings.secret_key.get_secret_value(),
        "SENTINEL_SMTP_HOST": settings.smtp_host,
        "SENTINEL_SMTP_PORT": str(settings.smtp_port),
        "SENTINEL_SMTP_SECURITY": settings.smtp_security,
        "SENTINEL_WEBHOOK_ALLOWED_NETWORKS": settings.webhook_allowed_networks,
        "SENTINEL_DELIVERY_LEASE_SECONDS": str(settings.delivery_lease_seconds),
        "SENTINEL_RUN_SCHEDULER": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(clock_offset)],
        cwd=REPOSITORY,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def deliveries(sessions: sessionmaker[Session]) -> list[Delivery]:
    with sessions.begin() as session:
        found = list(session.scalars(select(Delivery).order_by(Delivery.id)))
        session.expunge_all()
    return found


def test_sigkill_after_sending_loses_nothing_and_resends_with_the_same_ids(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    loaded_references: Library,
    smtp: tuple[Controller, SmtpRecorder],
    receiver: HookReceiver,
) -> None:
    _, recorder = smtp
    paths = ["/hooks/a", "/hooks/b"]
    created = create_subscriber(
        client,
        keys["admin"],
        "Health",
        [
            {"type": "email", "address": "ews@health.example"},
            *({"type": "webhook", "url": receiver.url(path)} for path in paths),
        ],
    )
    secrets = {
        c["url"].removeprefix(receiver.url("")): c["secret"]
        for c in created["channels"]
        if c["type"] == "webhook"
    }
    with sessions.begin() as session:
        alert_id = make_alert(session).id
    response = client.post(f"/v1/alerts/{alert_id}/publish", json={}, headers=auth(keys["officer"]))
    assert response.status_code == 200
    written = {d.id: d.message_id for d in deliveries(sessions)}
    assert len(written) == 3
    lease = settings.delivery_lease_seconds + 1

    def assert_claimed_not_recorded(clock_offset: float) -> None:
        rows = deliveries(sessions)
        assert {d.id: d.message_id for d in rows} == written
        assert {(d.status, d.attempts) for d in rows} == {(DeliveryStatus.SENDING, 0)}
        # While the dead process's lease lasts, nobody else sends these rows.
        ahead = utc_now() + timedelta(seconds=clock_offset)
        assert deliver_due(sessions, settings, now=lambda: ahead).claimed == 0

    # 1. Killed while the receivers hold their replies.
    receiver.hold = recorder.hold = True
    with running(start_child(settings, "normal", clock_offset=0)) as child:
        wait_for(lambda: len(receiver.requests) == 2 and len(recorder.held) == 1)
        kill(child)
    receiver.hold = recorder.hold = False
    receiver.release.set()
    recorder.release.set()
    assert_claimed_not_recorded(0)

    # 2. Lease expired: a second process resends, gets 2xx/250, and is killed before recording.
    with running(start_child(settings, "before-record", clock_offset=lease)) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "sent, outcome not recorded"
        assert len(receiver.requests) == 4
        assert len(recorder.messages) == 1
        kill(child)
    assert_claimed_not_recorded(lease)

    # 3. A third process, after that lease too, sends again and records.
    restart = start_child(settings, "normal", clock_offset=2 * lease)
    out, err = restart.communicate(timeout=60)
    assert restart.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"claimed": 3, "delivered": 3}

    # Every webhook arrived three times with one webhook-id, each signed and verifiable.
    for path, secret in secrets.items():
        hooks = receiver.to(path)
        assert len(hooks) == 3
        assert len({hook.headers["webhook-id"] for hook in hooks}) == 1
        assert hooks[0].headers["webhook-id"] in written.values()
        for hook in hooks:
            Webhook(secret).verify(hook.body, hook.headers)
    assert len({receiver.to(path)[0].headers["webhook-id"] for path in paths}) == 2
    # The email went three times too, with one Message-ID, so mail systems can drop copies.
    emails = [*recorder.held, *recorder.messages]  # held: received, never answered
    assert len(emails) == 3
    email_id = next(d.message_id for d in deliveries(sessions) if d.email_channel_id)
    assert {_message_id(envelope) for envelope in emails} == {f"<{email_id}@sentinel-nps>"}

    # Nothing lost: every row delivered once recorded, with its original message id.
    rows = deliveries(sessions)
    assert {d.id: d.message_id for d in rows} == written
    assert {(d.status, d.attempts, d.lease_until) for d in rows} == {
        (DeliveryStatus.DELIVERED, 1, None)
    }
    far = utc_now() + timedelta(days=30)
    assert deliver_due(sessions, settings, now=lambda: far).claimed == 0


@contextmanager
def running(child: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


def kill(child: subprocess.Popen[str]) -> None:
    """SIGKILL: no cleanup, no atexit, no rollback; the process just ends."""
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL


def _message_id(envelope: Any) -> str:
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    return str(message["Message-ID"])
