"""Subscribers, their channels (email, webhook) and the delivery outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alerts.levels import AlertLevel
from app.db import Base, utc_now
from app.models.enums import ChannelType, DeliveryStatus, SubscriberKind


class Subscriber(Base):
    __tablename__ = "subscriber"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[SubscriberKind]
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    countries: Mapped[list[Any]] = mapped_column(default=list)  # empty: all
    chemical_groups: Mapped[list[Any]] = mapped_column(default=list)  # empty: all
    effect_groups: Mapped[list[Any]] = mapped_column(default=list)  # empty: all
    min_level: Mapped[AlertLevel] = mapped_column(default=AlertLevel.WARNING)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    email_channels: Mapped[list[EmailChannel]] = relationship(
        back_populates="subscriber", lazy="raise"
    )
    webhook_endpoints: Mapped[list[WebhookEndpoint]] = relationship(
        back_populates="subscriber", lazy="raise"
    )


class EmailChannel(Base):
    __tablename__ = "email_channel"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"), index=True)
    address: Mapped[str] = mapped_column(String(320))
    active: Mapped[bool] = mapped_column(default=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    subscriber: Mapped[Subscriber] = relationship(back_populates="email_channels", lazy="raise")


class WebhookEndpoint(Base):
    """A webhook receiver; its signing secrets are stored encrypted, never in plaintext."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(default=True)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    subscriber: Mapped[Subscriber] = relationship(back_populates="webhook_endpoints", lazy="raise")


class Delivery(Base):
    """Outbox row: one message of one alert to one channel; message_id survives retries."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("message_id"),
        Index("ix_delivery_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64))
    # Null for service notices (e.g. "your endpoint was disabled"), described in `detail`.
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id"), index=True)
    alert_version: Mapped[int] = mapped_column(default=1)
    event: Mapped[str] = mapped_column(String(40))  # alert.published, alert.updated, ...
    channel_type: Mapped[ChannelType]
    email_channel_id: Mapped[int | None] = mapped_column(ForeignKey("email_channel.id"))
    webhook_endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_endpoint.id"))
    status: Mapped[DeliveryStatus] = mapped_column(default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utc_now)
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None]  # HTTP status or SMTP code of the last attempt
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    delivered_at: Mapped[datetime | None]

    email_channel: Mapped[EmailChannel | None] = relationship(lazy="raise")
    webhook_endpoint: Mapped[WebhookEndpoint | None] = relationship(lazy="raise")
