"""The delivery pass: claim due outbox rows, send them, record outcomes, retry or dead-letter.

At-least-once: a row is claimed under a lease before sending and its outcome recorded after.
A process killed in between leaves the row claimed; when the lease expires the row is claimed
again and sent again with the same message id (webhook-id header, email Message-ID), so
receivers can drop the duplicate. Nothing is lost.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from alerts.delivery import next_attempt_delay
from alerts.ssrf import parse_networks
from alerts.transports.base import Outcome
from alerts.transports.email import EmailMessage, EmailTransport
from alerts.transports.webhook import WebhookTransport
from app.crypto import SecretBox
from app.db import utc_now
from app.models import Alert, Delivery, EmailChannel, WebhookEndpoint
from app.models.enums import ChannelType, DeliveryStatus
from app.settings import Settings

logger = logging.getLogger("sentinel.delivery")

LEASE = timedelta(minutes=2)  # longer than the slowest send (SMTP timeout 30 s, webhooks 15 s)
DISABLE_AFTER = timedelta(days=3)  # an endpoint failing this long is disabled
SEND_WORKERS = 32


@dataclass
class PassResult:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    dead: int = 0
    disabled_endpoints: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Transports:
    email: EmailTransport
    webhook: WebhookTransport

    @classmethod
    def from_settings(cls, settings: Settings) -> Transports:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            email=EmailTransport(
                host=settings.smtp_host,
                port=settings.smtp_port,
                security=settings.smtp_security,
                username=settings.smtp_username,
                password=password,
                mail_from=settings.mail_from,
            ),
            webhook=WebhookTransport(
                allowed_networks=parse_networks(settings.webhook_allowed_networks)
            ),
        )


def claim_due(
    sessions: sessionmaker[Session],
    now: datetime,
    *,
    limit: int = 200,
    lease: timedelta = LEASE,
) -> list[int]:
    """Claim due rows under a lease. PostgreSQL: FOR UPDATE SKIP LOCKED, so that several
    delivery workers never claim one row twice; SQLite: the write lock taken at BEGIN."""
    with sessions.begin() as session:
        due = or_(
            (Delivery.status == DeliveryStatus.PENDING) & (Delivery.next_attempt_at <= now),
            (Delivery.status == DeliveryStatus.SENDING) & (Delivery.lease_until < now),
        )
        query = (
            select(Delivery.id)
            .where(due)
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.scalars(query))
        if ids:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids))
                .values(status=DeliveryStatus.SENDING, lease_until=now + lease)
            )
    return ids


class ChannelDisabledError(Exception):
    """The channel was disabled after the delivery was written: it is not sent."""


_WITH_SUBJECT = (selectinload(Alert.substance), selectinload(Alert.cluster))


def _preload(session: Session, deliveries: list[Delivery]) -> list[object]:
    """Load the alerts, email channels and endpoints of a batch with one query each.

    The per-row `session.get()` calls then find them (and the deliveries) in the identity map
    instead of querying row by row (3-4 queries per delivery otherwise). The identity map holds
    unchanged objects weakly, so the caller keeps the returned list while it works on the batch.
    """
    kept: list[object] = list(deliveries)
    wanted: list[tuple[type[Any], set[int], tuple[Any, ...]]] = [
        (Alert, {d.alert_id for d in deliveries if d.alert_id is not None}, _WITH_SUBJECT),
        (EmailChannel, {d.email_channel_id for d in deliveries if d.email_channel_id}, ()),
        (WebhookEndpoint, {d.webhook_endpoint_id for d in deliveries if d.webhook_endpoint_id}, ()),
    ]
    for model, ids, options in wanted:
        if ids:
            kept += session.scalars(select(model).where(model.id.in_(ids)).options(*options))
    return kept


@dataclass(frozen=True, slots=True)
class Prepared:
    delivery_id: int
    channel: ChannelType
    message_id: str
    send: Callable[[], Outcome]


def alert_payload(alert: Alert, delivery: Delivery, settings: Settings) -> dict[str, Any]:
    """The webhook body and email content: a small summary of the alert, with links."""
    substance = alert.substance
    cluster = alert.cluster
    base = settings.public_url.rstrip("/")
    return {
        "type": delivery.event,
        "message_id": delivery.message_id,
        "alert": {
            "id": alert.id,
            "version": delivery.alert_version,
            "level": alert.level.value,
            "status": alert.status.value,
            "title": alert.title,
            "summary": alert.summary,
            "score": alert.score,
            "components": alert.components,
            "countries": alert.countries,
            "subject": {
                "type": alert.subject_type.value,
                "name": substance.name if substance else alert.title.split(": ", 1)[-1],
                "inchikey": substance.inchikey if substance else None,
                "synonyms": list(substance.synonyms)[:5] if substance else [],
                "cluster_id": alert.cluster_id,
                "chemical_group": (
                    substance.chemical_group.value
                    if substance
                    else cluster.chemical_group.value
                    if cluster and cluster.chemical_group
                    else None
                ),
                "effect_group": (
                    substance.effect_group.value
                    if substance
                    else cluster.effect_group.value
                    if cluster and cluster.effect_group
                    else None
                ),
                "nearest": cluster.nearest[:3] if cluster else [],
            },
            "created_at": alert.created_at.isoformat(),
            "updated_at": alert.updated_at.isoformat(),
            "links": {
                "console": f"{base}/console/alerts/{alert.id}",
                "api": f"{base}/v1/alerts/{alert.id}",
                "cap": f"{base}/v1/alerts/{alert.id}/cap",
            },
        },
    }


def render_email(payload: dict[str, Any]) -> tuple[str, str, str]:
    """Subject, plain text and HTML bodies for an alert email."""
    alert = payload["alert"]
    verb = {
        "alert.published": "Alert",
        "alert.updated": "Update",
        "alert.resolved": "Resolved",
    }.get(payload["type"], "Alert")
    subject = f"[Sentinel-NPS {alert['level'].upper()}] {verb}: {alert['subject']['name']}"
    lines = [
        f"{verb}: {alert['subject']['name']}",
        f"Level: {alert['level']}   Score: {alert['score']:.1f}/100   Status: {alert['status']}",
        f"Countries: {', '.join(alert['countries']) or '-'}",
    ]
    if alert["subject"]["inchikey"]:
        lines.append(f"InChIKey: {alert['subject']['inchikey']}")
    if alert["subject"]["chemical_group"]:
        lines.append(
            f"Group: {alert['subject']['chemical_group']} / {alert['subject']['effect_group']}"
        )
    lines += ["", alert["summary"], "", "Why this score:"]
    lines += [f"  - {c['name']}: {c['reason']}" for c in alert["components"]]
    lines += [
        "",
        f"Console: {alert['links']['console']}",
        f"CAP: {alert['links']['cap']}",
        "",
        f"Message id: {payload['message_id']}",
    ]
    text = "\n".join(lines) + "\n"
    rows = "".join(
        f"<li><strong>{escape(c['name'])}</strong>: {escape(c['reason'])}</li>"
        for c in alert["components"]
    )
    html = (
        f"<html><body><h2>{escape(verb)}: {escape(alert['title'])}</h2>"
        f"<p>Level <strong>{escape(alert['level'])}</strong>, score {alert['score']:.1f}/100; "
        f"countries: {escape(', '.join(alert['countries']) or '-')}</p>"
        f"<p>{escape(alert['summary'])}</p><ul>{rows}</ul>"
        f'<p><a href="{escape(alert["links"]["console"])}">Open in the console</a> | '
        f'<a href="{escape(alert["links"]["cap"])}">CAP 1.2</a></p></body></html>'
    )
    return subject, text, html


def _notice_payload(delivery: Delivery) -> tuple[str, str, str]:
    detail = delivery.detail
    subject = "[Sentinel-NPS] Your webhook endpoint was disabled"
    text = (
        f"The webhook endpoint {detail.get('url')} was disabled: {detail.get('reason')}.\n"
        "Fix the receiver, then ask an administrator to re-enable it; alerts meanwhile\n"
        "still reach your other channels.\n"
    )
    return subject, text, f"<html><body><p>{escape(text)}</p></body></html>"


def _prepare(
    session: Session, delivery: Delivery, settings: Settings, transports: Transports, box: SecretBox
) -> Prepared:
    if delivery.alert_id is not None:
        alert = session.get(Alert, delivery.alert_id, options=_WITH_SUBJECT)
        assert alert is not None
        payload = alert_payload(alert, delivery, settings)
    else:
        payload = {
            "type": delivery.event,
            "message_id": delivery.message_id,
            "detail": delivery.detail,
        }
    if delivery.channel_type is ChannelType.EMAIL:
        channel = session.get(EmailChannel, delivery.email_channel_id)
        assert channel is not None
        if not channel.active:
            raise ChannelDisabledError(f"email channel {channel.id} is disabled")
        subject, text, html = (
            render_email(payload) if delivery.alert_id is not None else _notice_payload(delivery)
        )
        message = EmailMessage(
            to=channel.address,
            subject=subject,
            text=text,
            html=html,
            message_id=f"<{delivery.message_id}@sentinel-nps>",
        )
        return Prepared(
            delivery.id,
            ChannelType.EMAIL,
            delivery.message_id,
            lambda: transports.email.send(message),
        )
    endpoint = session.get(WebhookEndpoint, delivery.webhook_endpoint_id)
    assert endpoint is not None
    if not endpoint.active:
        raise ChannelDisabledError(
            f"webhook endpoint {endpoint.id} is disabled: {endpoint.disabled_reason}"
        )
    secrets = [box.decrypt(endpoint.secret_encrypted)]
    now = utc_now()
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        secrets.append(box.decrypt(endpoint.previous_secret_encrypted))
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    url = endpoint.url
    timestamp = int(now.timestamp())
    return Prepared(
        delivery.id,
        ChannelType.WEBHOOK,
        delivery.message_id,
        lambda: transports.webhook.send(
            url, secrets=secrets, msg_id=delivery.message_id, timestamp=timestamp, body=body
        ),
    )


def deliver_due(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    transports: Transports | None = None,
    now: Callable[[], datetime] = utc_now,
    rng: random.Random | None = None,
    limit: int = 200,
) -> PassResult:
    """One pass: claim due deliveries, send them concurrently, record each outcome."""
    rng = rng or random.Random()
    box = SecretBox(settings.secret_key.get_secret_value())
    result = PassResult()
    lease = timedelta(seconds=settings.delivery_lease_seconds)
    ids = claim_due(sessions, now(), limit=limit, lease=lease)
    result.claimed = len(ids)
    if not ids:
        return result
    owned = transports is None
    transports = transports or Transports.from_settings(settings)
    prepared: list[Prepared] = []
    try:
        with sessions.begin() as session:
            claimed = list(session.scalars(select(Delivery).where(Delivery.id.in_(ids))))
            kept = _preload(session, claimed)
            for delivery in claimed:
                try:
                    prepared.append(_prepare(session, delivery, settings, transports, box))
                except ChannelDisabledError as error:  # disabled since: not sent, not retried
                    delivery.status = DeliveryStatus.FAILED
                    delivery.lease_until = None
                    delivery.last_error = str(error)
                    result.failed += 1
                except Exception as error:  # a row that cannot even be built fails for good
                    logger.exception("delivery %s cannot be prepared", delivery.id)
                    delivery.status = DeliveryStatus.FAILED
                    delivery.last_error = f"cannot prepare: {type(error).__name__}: {error}"
                    result.failed += 1
        with ThreadPoolExecutor(max_workers=min(SEND_WORKERS, len(prepared) or 1)) as pool:
            outcomes = list(pool.map(_safe_send, prepared))
    finally:
        if owned:
            transports.webhook.close()  # its connection pools; the email transport holds none
    with sessions.begin() as session, session.no_autoflush:  # one flush, at commit
        kept = _preload(
            session, list(session.scalars(select(Delivery).where(Delivery.id.in_(ids))))
        )
        for item, outcome in zip(prepared, outcomes, strict=True):
            _record(session, item.delivery_id, outcome, now(), rng, result)
    del kept
    return result


def _safe_send(item: Prepared) -> Outcome:
    try:
        return item.send()
    except Exception as error:  # a transport bug must not lose the row: retry it later
        logger.exception("transport raised for delivery %s", item.delivery_id)
        return Outcome(ok=False, detail=f"transport error: {type(error).__name__}: {error}")


def _record(
    session: Session,
    delivery_id: int,
    outcome: Outcome,
    now: datetime,
    rng: random.Random,
    result: PassResult,
) -> None:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        return
    delivery.attempts += 1
    delivery.lease_until = None
    delivery.last_status = outcome.status
    endpoint = (
        session.get(WebhookEndpoint, delivery.webhook_endpoint_id)
        if delivery.webhook_endpoint_id
        else None
    )
    if outcome.ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.last_error = None
        result.delivered += 1
        if endpoint is not None:
            endpoint.consecutive_failures = 0
            endpoint.failing_since = None
        return
    delivery.last_error = outcome.detail[:2000]
    if endpoint is not None:
        endpoint.consecutive_failures += 1
        endpoint.failing_since = endpoint.failing_since or now
        endpoint.last_error = outcome.detail[:2000]
    if outcome.permanent:
        delivery.status = DeliveryStatus.FAILED
        result.failed += 1
        if delivery.email_channel_id is not None:
            channel = session.get(EmailChannel, delivery.email_channel_id)
            if channel is not None:
                channel.last_error = outcome.detail[:2000]  # flagged for the admins
        if endpoint is not None and endpoint.active and outcome.status == 410:
            _disable(session, endpoint, "the receiver answered 410 Gone", now, result)
        return
    delay = next_attempt_delay(delivery.attempts, rng=rng, retry_after=outcome.retry_after)
    if delay is None:
        delivery.status = DeliveryStatus.DEAD
        result.dead += 1
    else:
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = now + delay
        result.retrying += 1
    # Disable an endpoint that has failed for days; a dead letter also counts, since with
    # jitter the retry schedule (~75 h +/- 10%) can run out just before DISABLE_AFTER.
    if (
        endpoint is not None
        and endpoint.active
        and endpoint.failing_since is not None
        and (
            now - endpoint.failing_since >= DISABLE_AFTER or delivery.status is DeliveryStatus.DEAD
        )
    ):
        _disable(
            session, endpoint, f"failing since {endpoint.failing_since.isoformat()}", now, result
        )


def _disable(
    session: Session, endpoint: WebhookEndpoint, reason: str, now: datetime, result: PassResult
) -> None:
    """Disable a webhook endpoint and tell its subscriber on every email channel it has."""
    import uuid

    endpoint.active = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = reason
    result.disabled_endpoints.append(endpoint.id)
    for channel in session.scalars(
        select(EmailChannel).where(
            EmailChannel.subscriber_id == endpoint.subscriber_id, EmailChannel.active.is_(True)
        )
    ):
        session.add(
            Delivery(
                message_id=str(uuid.uuid4()),
                alert_id=None,
                event="endpoint.disabled",
                channel_type=ChannelType.EMAIL,
                email_channel_id=channel.id,
                next_attempt_at=now,
                detail={"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason},
            )
        )
