"""Threat scores, alerts and their history."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alerts.levels import AlertLevel
from app.db import Base, stored_enum, utc_now
from app.models.detection import Cluster
from app.models.enums import AlertStatus, SubjectType
from app.models.substance import Substance


class ThreatScore(Base):
    __tablename__ = "threat_score"
    # One row per subject and day: a later run on the same day replaces the day's score.
    __table_args__ = (UniqueConstraint("subject_key", "as_of"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_type: Mapped[SubjectType]
    subject_key: Mapped[str] = mapped_column(String(60))  # "substance:<inchikey>", "cluster:<id>"
    substance_id: Mapped[int | None] = mapped_column(ForeignKey("substance.id"))
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("cluster.id"))
    scored_at: Mapped[datetime] = mapped_column(default=utc_now)
    as_of: Mapped[date]
    window_days: Mapped[int]
    score: Mapped[float]
    components: Mapped[list[Any]] = mapped_column(default=list)


class Alert(Base):
    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_status_level", "status", "level"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "<subject_key>#<n>": one alert per subject at a time; n counts the subject's alerts.
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    subject_key: Mapped[str] = mapped_column(String(60), index=True)
    subject_type: Mapped[SubjectType]
    substance_id: Mapped[int | None] = mapped_column(ForeignKey("substance.id"))
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("cluster.id"))
    level: Mapped[AlertLevel]
    status: Mapped[AlertStatus] = mapped_column(default=AlertStatus.NEW)
    score: Mapped[float]
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    components: Mapped[list[Any]] = mapped_column(default=list)
    countries: Mapped[list[Any]] = mapped_column(default=list)
    needs_review: Mapped[bool] = mapped_column(default=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    version: Mapped[int] = mapped_column(default=1)  # CAP Update references earlier versions
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(
        default=utc_now
    )  # set by every change, on its clock
    acknowledged_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    last_above_on: Mapped[date | None]  # last day the score held a level (for the quiet period)
    dismissed_level: Mapped[AlertLevel | None] = mapped_column(
        stored_enum(AlertLevel, "dismissed_level")
    )

    substance: Mapped[Substance | None] = relationship(lazy="raise")
    cluster: Mapped[Cluster | None] = relationship(lazy="raise")
    events: Mapped[list[AlertEvent]] = relationship(
        back_populates="alert", lazy="raise", order_by="AlertEvent.id"
    )


class AlertEvent(Base):
    __tablename__ = "alert_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(320))
    from_status: Mapped[AlertStatus | None] = mapped_column(stored_enum(AlertStatus, "from_status"))
    to_status: Mapped[AlertStatus | None] = mapped_column(stored_enum(AlertStatus, "to_status"))
    level: Mapped[AlertLevel | None]
    score: Mapped[float | None]
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    alert: Mapped[Alert] = relationship(back_populates="events", lazy="raise")
