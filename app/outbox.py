"""The delivery outbox: a Delivery row per alert and matching channel, written with the alert."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.db import utc_now
from app.models import Alert, Cluster, Delivery, Subscriber, Substance
from app.models.enums import ChannelType


def _alert_groups(session: Session, alert: Alert) -> tuple[str | None, str | None]:
    if alert.substance_id is not None:
        substance = session.get(Substance, alert.substance_id)
        if substance is not None:
            return substance.chemical_group.value, substance.effect_group.value
    if alert.cluster_id is not None:
        cluster = session.get(Cluster, alert.cluster_id)
        if cluster is not None:
            return (
                cluster.chemical_group.value if cluster.chemical_group else None,
                cluster.effect_group.value if cluster.effect_group else None,
            )
    return None, None


def subscriber_matches(
    subscriber: Subscriber, alert: Alert, chemical_group: str | None, effect_group: str | None
) -> bool:
    """A subscriber's filters: minimum level, countries, chemical and effect groups (empty: all)."""
    if alert.level < subscriber.min_level:
        return False
    if subscriber.countries and not set(subscriber.countries) & set(alert.countries or []):
        return False
    if subscriber.chemical_groups and chemical_group not in subscriber.chemical_groups:
        return False
    return not (subscriber.effect_groups and effect_group not in subscriber.effect_groups)


def enqueue_for_alert(
    session: Session, alert: Alert, *, event: str, now: datetime | None = None
) -> list[Delivery]:
    """Write one pending delivery per active channel of every matching active subscriber."""
    now = now or utc_now()
    chemical_group, effect_group = _alert_groups(session, alert)
    subscribers = session.scalars(
        select(Subscriber)
        .where(Subscriber.active.is_(True))
        .options(
            selectinload(Subscriber.email_channels), selectinload(Subscriber.webhook_endpoints)
        )
    ).all()
    deliveries: list[Delivery] = []
    for subscriber in subscribers:
        if not subscriber_matches(subscriber, alert, chemical_group, effect_group):
            continue
        for email in subscriber.email_channels:
            if email.active:
                deliveries.append(
                    Delivery(
                        message_id=str(uuid.uuid4()),
                        alert_id=alert.id,
                        alert_version=alert.version,
                        event=event,
                        channel_type=ChannelType.EMAIL,
                        email_channel_id=email.id,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
        for endpoint in subscriber.webhook_endpoints:
            if endpoint.active:
                deliveries.append(
                    Delivery(
                        message_id=str(uuid.uuid4()),
                        alert_id=alert.id,
                        alert_version=alert.version,
                        event=event,
                        channel_type=ChannelType.WEBHOOK,
                        webhook_endpoint_id=endpoint.id,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
    session.add_all(deliveries)
    return deliveries
