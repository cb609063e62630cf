"""Failures: retries on the documented schedule (fake clock, seeded jitter), dead letters and
replay, 410 and days of failure disabling an endpoint, SMTP 451 and 550, Retry-After, and
secret rotation's overlap. Real SMTP (aiosmtpd) and HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from alerts.delivery import MAX_ATTEMPTS, RETRY_SCHEDULE, next_attempt_delay
from app.db import utc_now
from app.delivery import DISABLE_AFTER, deliver_due
from app.models import Delivery, WebhookEndpoint
from app.models.enums import DeliveryStatus
from app.settings import Settings
from tests.app.delivery_support import (
    FakeClock,
    HookReceiver,
    SmtpRecorder,
    channel,
    create_subscriber,
    delivery_settings,
    hook_receiver,
    make_alert,
    smtp_server,
)
from tests.conftest import auth

pytestmark = pytest.mark.usefixtures("loaded_references")


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, SmtpRecorder]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def recorder(smtp: tuple[Controller, SmtpRecorder]) -> SmtpRecorder:
    return smtp[1]


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    with hook_receiver() as receiver:
        yield receiver


@pytest.fixture
def settings(settings: Settings, smtp: tuple[Controller, SmtpRecorder]) -> Settings:
    return delivery_settings(settings, smtp[0].port)


def publish_new_alert(
    client: TestClient, sessions: sessionmaker[Session], officer: str, **overrides: Any
) -> int:
    with sessions.begin() as session:
        alert_id = make_alert(session, **overrides).id
    response = client.post(f"/v1/alerts/{alert_id}/publish", json={}, headers=auth(officer))
    assert response.status_code == 200, response.text
    return alert_id


def rows(sessions: sessionmaker[Session]) -> list[Delivery]:
    with sessions.begin() as session:
        found = list(session.scalars(select(Delivery).order_by(Delivery.id)))
        session.expunge_all()
    return found


def test_a_failing_receiver_is_retried_on_schedule_then_dead_lettered_and_replayed(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    receiver: HookReceiver,
) -> None:
    admin = keys["admin"]
    created = create_subscriber(
        client, admin, "Health", [{"type": "webhook", "url": receiver.url("/fail")}]
    )
    secret = channel(created, "webhook")["secret"]
    receiver.statuses["/fail"] = [500]
    publish_new_alert(client, sessions, keys["officer"])
    clock = FakeClock()
    rng, reference = random.Random(2024), random.Random(2024)

    for attempt in range(1, MAX_ATTEMPTS + 1):
        result = deliver_due(sessions, settings, now=clock, rng=rng)
        assert result.claimed == 1, attempt
        [delivery] = rows(sessions)
        assert (delivery.attempts, delivery.last_status) == (attempt, 500)
        if attempt == MAX_ATTEMPTS:
            assert delivery.status is DeliveryStatus.DEAD
            assert result.dead == 1
            break
        assert delivery.status is DeliveryStatus.PENDING
        assert result.retrying == 1
        # The documented schedule, spread by +/-10% jitter from the seeded generator.
        delay = delivery.next_attempt_at - clock()
        assert delay == next_attempt_delay(attempt, rng=reference)
        scheduled = RETRY_SCHEDULE[attempt - 1]
        assert scheduled * 0.9 <= delay <= scheduled * 1.1
        clock.at = delivery.next_attempt_at - timedelta(milliseconds=1)
        assert deliver_due(sessions, settings, now=clock).claimed == 0  # never early
        clock.at = delivery.next_attempt_at

    hooks = receiver.to("/fail")
    assert len(hooks) == MAX_ATTEMPTS
    assert {hook.headers["webhook-id"] for hook in hooks} == {delivery.message_id}
    for hook in hooks:
        Webhook(secret).verify(hook.body, hook.headers)

    dead = client.get("/v1/deliveries?status=dead", headers=auth(admin)).json()
    assert [(d["id"], d["attempts"], d["last_status"]) for d in dead] == [
        (delivery.id, MAX_ATTEMPTS, 500)
    ]
    assert "HTTP 500" in dead[0]["last_error"]
    # A dead letter disables the failing endpoint (and its subscriber is told by email).
    with sessions.begin() as session:
        endpoint = session.get(WebhookEndpoint, delivery.webhook_endpoint_id)
        assert endpoint is not None
        assert endpoint.active is False
    assert client.get("/v1/deliveries?status=pending", headers=auth(admin)).json() == []
    assert deliver_due(sessions, settings, now=lambda: clock() + timedelta(days=30)).claimed == 0

    # The receiver is fixed; an admin re-enables the endpoint (if the days of failure disabled
    # it) and replays the dead letter: it is sent again with the same message id.
    receiver.statuses["/fail"] = [200]
    enabled = client.post(
        f"/v1/webhooks/{delivery.webhook_endpoint_id}/enable", headers=auth(admin)
    )
    assert enabled.status_code == 204
    replayed = client.post(f"/v1/deliveries/{delivery.id}/replay", headers=auth(admin))
    assert replayed.status_code == 200
    assert [d["status"] for d in replayed.json()] == ["pending"]
    assert deliver_due(sessions, settings, now=clock).delivered == 1
    last = receiver.to("/fail")[-1]
    assert len(receiver.to("/fail")) == MAX_ATTEMPTS + 1
    assert last.headers["webhook-id"] == delivery.message_id
    Webhook(secret).verify(last.body, last.headers)
    [final] = rows(sessions)
    assert final.status is DeliveryStatus.DELIVERED
    assert final.attempts == 1  # a replay starts a fresh retry schedule
    assert client.get("/v1/deliveries?status=dead", headers=auth(admin)).json() == []
    assert client.post("/v1/deliveries/999999/replay", headers=auth(admin)).status_code == 404


def test_retry_after_is_honoured_for_429_and_503(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    receiver: HookReceiver,
) -> None:
    create_subscriber(
        client, keys["admin"], "Health", [{"type": "webhook", "url": receiver.url("/busy")}]
    )
    receiver.statuses["/busy"] = [503, 429, 204]
    receiver.extra_headers["/busy"] = {"retry-after": "3600"}
    publish_new_alert(client, sessions, keys["officer"])
    clock = FakeClock()
    for expected_status in (503, 429):
        assert deliver_due(sessions, settings, now=clock, rng=random.Random(1)).retrying == 1
        [delivery] = rows(sessions)
        assert delivery.last_status == expected_status
        assert delivery.next_attempt_at - clock() == timedelta(hours=1)  # not the 5 s, 5 min
        clock.at = delivery.next_attempt_at
    assert deliver_due(sessions, settings, now=clock).delivered == 1
    assert len(receiver.to("/busy")) == 3


def test_410_disables_the_endpoint_and_the_subscriber_is_told_by_email(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    receiver: HookReceiver,
    recorder: SmtpRecorder,
) -> None:
    admin = keys["admin"]
    url = receiver.url("/gone?x=<b>")
    created = create_subscriber(
        client,
        admin,
        "Health",
        [{"type": "email", "address": "ops@health.example"}, {"type": "webhook", "url": url}],
    )
    receiver.statuses["/gone?x=%3Cb%3E"] = [410]  # as sent, percent-encoded
    publish_new_alert(client, sessions, keys["officer"])
    publish_new_alert(client, sessions, keys["officer"], score=80.0)
    clock = FakeClock()
    # Both webhooks go out in one pass; the first 410 disables the endpoint.
    result = deliver_due(sessions, settings, now=clock)
    endpoint_id = channel(created, "webhook")["id"]
    assert result.disabled_endpoints == [endpoint_id]
    webhooks = [d for d in rows(sessions) if d.webhook_endpoint_id]
    assert {(d.status, d.attempts, d.last_status) for d in webhooks} == {
        (DeliveryStatus.FAILED, 1, 410)
    }
    shown = client.get(f"/v1/subscribers/{created['id']}", headers=auth(admin)).json()
    webhook = channel(shown, "webhook")
    assert webhook["active"] is False
    assert "410" in webhook["last_error"]

    notices = [d for d in rows(sessions) if d.event == "endpoint.disabled"]
    assert len(notices) == 1
    assert notices[0].status is DeliveryStatus.PENDING
    assert deliver_due(sessions, settings, now=clock).delivered == 1
    notice = email.message_from_bytes(
        recorder.messages[-1].original_content, policy=email.policy.default
    )
    assert notice["Subject"] == "[Sentinel-NPS] Your webhook endpoint was disabled"
    assert notice["Message-ID"] == f"<{notices[0].message_id}@sentinel-nps>"
    text, html = notice.get_body(("plain",)), notice.get_body(("html",))
    assert text is not None
    assert html is not None
    assert url in text.get_content()
    assert "410 Gone" in text.get_content()
    assert "<b>" not in html.get_content()  # the URL is escaped in the HTML part

    # A disabled endpoint gets no new deliveries; the email channel still does.
    publish_new_alert(client, sessions, keys["officer"], score=90.0)
    assert [d.channel_type.value for d in rows(sessions)[-1:]] == ["email"]
    deliver_due(sessions, settings, now=clock)
    assert len(receiver.requests) == 2


def test_an_endpoint_failing_for_more_than_three_days_is_disabled_and_not_sent_to(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    receiver: HookReceiver,
    recorder: SmtpRecorder,
) -> None:
    admin = keys["admin"]
    created = create_subscriber(
        client,
        admin,
        "Health",
        [
            {"type": "email", "address": "ops@health.example"},
            {"type": "webhook", "url": receiver.url("/down")},
        ],
    )
    receiver.statuses["/down"] = [503]
    publish_new_alert(client, sessions, keys["officer"])
    clock = FakeClock()
    result = deliver_due(sessions, settings, now=clock, rng=random.Random(3))
    assert (result.delivered, result.retrying, result.disabled_endpoints) == (1, 1, [])

    # Still failing just under three days later: kept.
    clock.advance(DISABLE_AFTER - timedelta(minutes=1))
    assert deliver_due(sessions, settings, now=clock).disabled_endpoints == []
    # A new alert, and the endpoint has been failing for longer than three days: disabled.
    publish_new_alert(client, sessions, keys["officer"], score=75.0)
    clock.advance(timedelta(hours=1))
    result = deliver_due(sessions, settings, now=clock)
    endpoint_id = channel(created, "webhook")["id"]
    assert result.disabled_endpoints == [endpoint_id]
    with sessions.begin() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert not endpoint.active
        assert endpoint.disabled_reason
        assert endpoint.disabled_reason.startswith("failing since")
    sent = len(receiver.requests)

    # The notice goes out by email; the endpoint's remaining deliveries are not sent to it.
    deliver_due(sessions, settings, now=lambda: clock() + timedelta(days=2))
    notices = [d for d in rows(sessions) if d.event == "endpoint.disabled"]
    assert [(d.status, d.channel_type.value) for d in notices] == [
        (DeliveryStatus.DELIVERED, "email")
    ]
    subjects = [
        email.message_from_bytes(m.original_content, policy=email.policy.default)["Subject"]
        for m in recorder.messages
    ]
    assert subjects.count("[Sentinel-NPS] Your webhook endpoint was disabled") == 1
    assert len(receiver.requests) == sent
    webhooks = [d for d in rows(sessions) if d.webhook_endpoint_id]
    assert all(d.status is not DeliveryStatus.PENDING for d in webhooks)


def test_smtp_451_then_250_is_delivered_once(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    recorder: SmtpRecorder,
) -> None:
    create_subscriber(
        client, keys["admin"], "Health", [{"type": "email", "address": "a@h.example"}]
    )
    recorder.data_replies = ["451 4.3.0 mailbox temporarily unavailable"]
    publish_new_alert(client, sessions, keys["officer"])
    clock = FakeClock()
    assert deliver_due(sessions, settings, now=clock, rng=random.Random(5)).retrying == 1
    [delivery] = rows(sessions)
    assert (delivery.status, delivery.last_status, delivery.attempts) == (
        DeliveryStatus.PENDING,
        451,
        1,
    )
    assert "451" in (delivery.last_error or "")
    assert recorder.messages == []
    clock.at = delivery.next_attempt_at
    assert deliver_due(sessions, settings, now=clock).delivered == 1
    assert deliver_due(sessions, settings, now=lambda: clock() + timedelta(days=9)).claimed == 0
    assert (recorder.attempts, len(recorder.messages)) == (2, 1)
    message = email.message_from_bytes(
        recorder.messages[0].original_content, policy=email.policy.default
    )
    assert message["Message-ID"] == f"<{delivery.message_id}@sentinel-nps>"
    [delivery] = rows(sessions)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 2)


def test_smtp_550_is_not_retried_and_the_channel_is_flagged(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    recorder: SmtpRecorder,
) -> None:
    admin = keys["admin"]
    created = create_subscriber(
        client, admin, "Health", [{"type": "email", "address": "gone@h.example"}]
    )
    recorder.data_replies = ["550 5.1.1 no such user"]
    publish_new_alert(client, sessions, keys["officer"])
    clock = FakeClock()
    assert deliver_due(sessions, settings, now=clock).failed == 1
    for days in (1, 10):
        later = FakeClock(clock() + timedelta(days=days))
        assert deliver_due(sessions, settings, now=later).claimed == 0
    assert (recorder.attempts, recorder.messages) == (1, [])
    [delivery] = client.get("/v1/deliveries", headers=auth(admin)).json()
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == ("failed", 1, 550)
    shown = client.get(f"/v1/subscribers/{created['id']}", headers=auth(admin)).json()
    assert "550" in channel(shown, "email")["last_error"]


def test_after_rotation_both_secrets_sign_until_the_overlap_ends(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    receiver: HookReceiver,
) -> None:
    admin = keys["admin"]
    created = create_subscriber(
        client, admin, "Health", [{"type": "webhook", "url": receiver.url("/r")}]
    )
    endpoint_id = channel(created, "webhook")["id"]
    old = channel(created, "webhook")["secret"]
    response = client.post(f"/v1/webhooks/{endpoint_id}/rotate-secret", headers=auth(admin))
    assert response.status_code == 200
    new = response.json()["secret"]
    assert new != old
    assert new.startswith("whsec_")
    publish_new_alert(client, sessions, keys["officer"])
    deliver_due(sessions, settings)
    hook = receiver.requests[-1]
    assert len(hook.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Webhook(secret).verify(hook.body, hook.headers)

    with sessions.begin() as session:  # the overlap is over
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(previous_secret_expires_at=utc_now() - timedelta(seconds=1))
        )
    publish_new_alert(client, sessions, keys["officer"], score=77.0)
    deliver_due(sessions, settings)
    hook = receiver.requests[-1]
    Webhook(new).verify(hook.body, hook.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(hook.body, hook.headers)
