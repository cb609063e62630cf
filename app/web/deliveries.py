"""The delivery outbox as the console shows it: each row with its subscriber and channel."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Delivery, EmailChannel, Subscriber, WebhookEndpoint
from app.models.enums import DeliveryStatus


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    delivery: Delivery
    subscriber: str
    target: str  # email address or webhook URL


def deliveries(
    session: Session,
    *,
    alert_id: int | None = None,
    status: DeliveryStatus | None = None,
    limit: int = 200,
) -> list[DeliveryRow]:
    """Newest first, in one query (the channel and subscriber joined, whichever the type)."""
    email_subscriber = Subscriber.__table__.alias("email_subscriber")
    hook_subscriber = Subscriber.__table__.alias("hook_subscriber")
    query = (
        select(
            Delivery,
            EmailChannel.address,
            WebhookEndpoint.url,
            func.coalesce(email_subscriber.c.name, hook_subscriber.c.name),
        )
        .outerjoin(EmailChannel, Delivery.email_channel_id == EmailChannel.id)
        .outerjoin(email_subscriber, email_subscriber.c.id == EmailChannel.subscriber_id)
        .outerjoin(WebhookEndpoint, Delivery.webhook_endpoint_id == WebhookEndpoint.id)
        .outerjoin(hook_subscriber, hook_subscriber.c.id == WebhookEndpoint.subscriber_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if alert_id is not None:
        query = query.where(Delivery.alert_id == alert_id)
    if status is not None:
        query = query.where(Delivery.status == status)
    return [
        DeliveryRow(delivery, subscriber or "(service notice)", address or url or "")
        for delivery, address, url, subscriber in session.execute(query)
    ]


def status_counts(session: Session) -> dict[str, int]:
    counts = {status.value: 0 for status in DeliveryStatus}
    for status, count in session.execute(
        select(Delivery.status, func.count()).group_by(Delivery.status)
    ):
        counts[status.value] = count
    return counts
