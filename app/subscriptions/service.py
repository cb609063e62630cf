"""Subscribers and their channels; the deliveries admins inspect and replay."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from alerts.ssrf import UnsafeUrlError, check_url, parse_networks
from alerts.transports.webhook import new_secret
from app.crypto import SecretBox
from app.db import utc_now
from app.errors import ConflictError, FieldError, InvalidFieldsError, NotFoundError
from app.models import Delivery, EmailChannel, Organisation, Subscriber, WebhookEndpoint
from app.models.enums import DeliveryStatus, OrganisationKind, SubscriberKind
from app.subscriptions.schemas import SubscriberCreate, WebhookChannelCreate

ROTATION_OVERLAP = timedelta(hours=24)  # both secrets sign during this time after a rotation


def _organisation_kind(kind: SubscriberKind) -> OrganisationKind:
    return OrganisationKind.MINISTRY if kind is SubscriberKind.MINISTRY else OrganisationKind.AGENCY


def create(
    session: Session, body: SubscriberCreate, *, box: SecretBox, allowed_networks: str
) -> tuple[Subscriber, dict[int, str]]:
    """Create a subscriber with its organisation and channels; returns the new webhook secrets
    (channel id -> secret), which are shown once and stored only encrypted."""
    if session.scalar(select(Subscriber.id).where(Subscriber.name == body.name)) is not None:
        raise ConflictError(f"subscriber {body.name!r} already exists")
    networks = parse_networks(allowed_networks)
    errors = []
    for index, channel in enumerate(body.channels):
        if isinstance(channel, WebhookChannelCreate):
            try:
                check_url(channel.url, allowed_networks=networks)
            except UnsafeUrlError as error:
                errors.append(FieldError(f"channels.{index}.url", str(error)))
    if errors:
        raise InvalidFieldsError(errors)
    organisation = session.scalar(select(Organisation).where(Organisation.name == body.name))
    if organisation is None:
        organisation = Organisation(name=body.name, kind=_organisation_kind(body.kind))
        session.add(organisation)
        session.flush()
    subscriber = Subscriber(
        name=body.name,
        kind=body.kind,
        organisation_id=organisation.id,
        countries=body.filters.countries,
        chemical_groups=[group.value for group in body.filters.chemical_groups],
        effect_groups=[group.value for group in body.filters.effect_groups],
        min_level=body.filters.min_level,
    )
    session.add(subscriber)
    session.flush()
    secrets: dict[int, str] = {}
    for channel in body.channels:
        if isinstance(channel, WebhookChannelCreate):
            secret = new_secret()
            endpoint = WebhookEndpoint(
                subscriber_id=subscriber.id, url=channel.url, secret_encrypted=box.encrypt(secret)
            )
            session.add(endpoint)
            session.flush()
            secrets[endpoint.id] = secret
        else:
            session.add(EmailChannel(subscriber_id=subscriber.id, address=channel.address))
    session.flush()
    return get(session, subscriber.id), secrets


def get(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.scalar(
        select(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .options(
            selectinload(Subscriber.email_channels), selectinload(Subscriber.webhook_endpoints)
        )
    )
    if subscriber is None:
        raise NotFoundError(f"subscriber {subscriber_id} not found")
    return subscriber


def list_all(session: Session) -> list[Subscriber]:
    return list(
        session.scalars(
            select(Subscriber)
            .order_by(Subscriber.name)
            .options(
                selectinload(Subscriber.email_channels), selectinload(Subscriber.webhook_endpoints)
            )
        )
    )


def view(subscriber: Subscriber, secrets: dict[int, str] | None = None) -> dict[str, Any]:
    secrets = secrets or {}
    channels: list[dict[str, Any]] = [
        {
            "id": c.id,
            "type": "email",
            "address": c.address,
            "active": c.active,
            "last_error": c.last_error,
        }
        for c in subscriber.email_channels
    ] + [
        {
            "id": w.id,
            "type": "webhook",
            "url": w.url,
            "active": w.active,
            "last_error": w.disabled_reason or w.last_error,
            "secret": secrets.get(w.id),
        }
        for w in subscriber.webhook_endpoints
    ]
    return {
        "id": subscriber.id,
        "name": subscriber.name,
        "kind": subscriber.kind.value,
        "organisation_id": subscriber.organisation_id,
        "active": subscriber.active,
        "filters": {
            "countries": subscriber.countries,
            "chemical_groups": subscriber.chemical_groups,
            "effect_groups": subscriber.effect_groups,
            "min_level": subscriber.min_level.value,
        },
        "channels": channels,
    }


def rotate_secret(
    session: Session, endpoint_id: int, *, box: SecretBox
) -> tuple[WebhookEndpoint, str, datetime]:
    """A new secret signs from now on; the old one also signs for ROTATION_OVERLAP."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFoundError(f"webhook endpoint {endpoint_id} not found")
    secret = new_secret()
    until = utc_now() + ROTATION_OVERLAP
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = until
    endpoint.secret_encrypted = box.encrypt(secret)
    session.flush()
    return endpoint, secret, until


def enable_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFoundError(f"webhook endpoint {endpoint_id} not found")
    endpoint.active = True
    endpoint.disabled_at = None
    endpoint.disabled_reason = None
    endpoint.failing_since = None
    endpoint.consecutive_failures = 0
    session.flush()
    return endpoint


def list_deliveries(
    session: Session, *, status: DeliveryStatus | None, limit: int
) -> list[Delivery]:
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Delivery.status == status)
    return list(session.scalars(query))


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "message_id": delivery.message_id,
        "alert_id": delivery.alert_id,
        "event": delivery.event,
        "channel_type": delivery.channel_type.value,
        "channel_id": delivery.email_channel_id or delivery.webhook_endpoint_id,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }


def replay(session: Session, delivery_ids: list[int]) -> list[Delivery]:
    """Send again (same message id, so receivers can deduplicate), as soon as possible, with a
    fresh retry schedule (attempts start again from zero)."""
    now = utc_now()
    deliveries = list(session.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids))))
    for delivery in deliveries:
        delivery.attempts = 0
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = now
        delivery.lease_until = None
    session.flush()
    return deliveries


def replay_since(session: Session, since: datetime) -> list[Delivery]:
    ids = list(session.scalars(select(Delivery.id).where(Delivery.created_at >= since)))
    return replay(session, ids)
