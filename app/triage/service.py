"""Alert triage: list, read and act on alerts (acknowledge, escalate, dismiss, publish, resolve)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from alerts.levels import AlertLevel
from app.db import utc_now
from app.deps import Principal
from app.errors import ConflictError, FieldError, InvalidFieldsError, NotFoundError
from app.models import (
    Alert,
    AlertEvent,
    Cluster,
    Delivery,
    EmailChannel,
    Subscriber,
    ThreatScore,
    WebhookEndpoint,
)
from app.models.enums import AlertStatus, ApiRole
from app.outbox import enqueue_for_alert
from app.scoring.facts import cluster_name
from app.scoring.service import OPEN_STATUSES, publish

_WITH_SUBJECT = (selectinload(Alert.substance), selectinload(Alert.cluster))


def visible(query: Select[Alert], principal: Principal) -> Select[Alert]:
    """Officers and admins see every alert; a subscriber key sees what its organisation was sent."""
    if principal.role in (ApiRole.OFFICER, ApiRole.ADMIN):
        return query
    subscriber_ids = select(Subscriber.id).where(
        Subscriber.organisation_id == principal.organisation_id
    )
    via_email = (
        select(Delivery.alert_id)
        .join(EmailChannel, Delivery.email_channel_id == EmailChannel.id)
        .where(EmailChannel.subscriber_id.in_(subscriber_ids))
    )
    via_webhook = (
        select(Delivery.alert_id)
        .join(WebhookEndpoint, Delivery.webhook_endpoint_id == WebhookEndpoint.id)
        .where(WebhookEndpoint.subscriber_id.in_(subscriber_ids))
    )
    return query.where(Alert.id.in_(via_email.union(via_webhook)))


def list_alerts(
    session: Session,
    principal: Principal,
    *,
    status: AlertStatus | None,
    level: AlertLevel | None,
    since: datetime | None,
    open_only: bool,
    limit: int,
) -> list[Alert]:
    query = select(Alert).options(*_WITH_SUBJECT)
    if status is not None:
        query = query.where(Alert.status == status)
    elif open_only:
        query = query.where(Alert.status.in_(OPEN_STATUSES))
    if level is not None:
        query = query.where(Alert.level == level)
    if since is not None:
        query = query.where(Alert.updated_at >= since)
    query = visible(query, principal)
    alerts = list(session.scalars(query))
    alerts.sort(key=lambda a: (a.level.rank, a.score, a.id), reverse=True)
    return alerts[:limit]


def open_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Alert.level, func.count())
        .where(Alert.status.in_(OPEN_STATUSES))
        .group_by(Alert.level)
    ).all()
    counts = {level.value: 0 for level in AlertLevel}
    counts.update({level.value: count for level, count in rows})
    return counts


def get_alert(
    session: Session, principal: Principal, alert_id: int, *, for_update: bool = False
) -> Alert:
    """The alert, if the principal may see it. Actions pass `for_update`: on PostgreSQL the row
    stays locked until the transaction ends, so that two API processes acting on one alert at
    once take turns, and the second sees the first's status (one publish, one set of
    deliveries). SQLite needs no lock: its writers already take turns (BEGIN IMMEDIATE)."""
    query = (
        select(Alert)
        .where(Alert.id == alert_id)
        .options(*_WITH_SUBJECT, selectinload(Alert.events))
    )
    if for_update:
        query = query.with_for_update(of=Alert)
    alert = session.scalar(visible(query, principal))
    if alert is None:
        raise NotFoundError(f"alert {alert_id} not found")
    return alert


def _transition(
    session: Session,
    alert: Alert,
    action: str,
    to_status: AlertStatus,
    allowed_from: Sequence[AlertStatus],
    *,
    actor: str,
    note: str,
) -> Alert:
    if alert.status not in allowed_from:
        allowed = ", ".join(status.value for status in allowed_from)
        raise ConflictError(f"alert {alert.id} is {alert.status.value}; {action} needs: {allowed}")
    now = utc_now()
    previous = alert.status
    alert.status = to_status
    alert.updated_at = now
    session.add(
        AlertEvent(
            alert=alert,
            action=action,
            actor=actor,
            from_status=previous,
            to_status=to_status,
            level=alert.level,
            score=alert.score,
            note=note,
            created_at=now,
        )
    )
    session.flush()
    return alert


def acknowledge(session: Session, alert: Alert, *, actor: str, note: str) -> Alert:
    """New alerts become acknowledged; a published alert awaiting review is marked reviewed."""
    if alert.status is AlertStatus.PUBLISHED and alert.needs_review:
        alert.needs_review = False
        alert.updated_at = utc_now()
        session.add(
            AlertEvent(
                alert=alert,
                action="review",
                actor=actor,
                from_status=alert.status,
                to_status=alert.status,
                level=alert.level,
                score=alert.score,
                note=note,
            )
        )
        session.flush()
        return alert
    _transition(
        session,
        alert,
        "acknowledge",
        AlertStatus.ACKNOWLEDGED,
        [AlertStatus.NEW],
        actor=actor,
        note=note,
    )
    alert.acknowledged_at = utc_now()
    alert.needs_review = False
    return alert


def escalate(session: Session, alert: Alert, *, actor: str, note: str) -> Alert:
    return _transition(
        session,
        alert,
        "escalate",
        AlertStatus.ESCALATED,
        [AlertStatus.NEW, AlertStatus.ACKNOWLEDGED],
        actor=actor,
        note=note,
    )


def dismiss(session: Session, alert: Alert, *, actor: str, note: str) -> Alert:
    """Dismiss a false signal; it stays dismissed until the subject reaches a higher level."""
    if not note.strip():
        raise InvalidFieldsError([FieldError("note", "a dismissal needs a reason")])
    _transition(
        session,
        alert,
        "dismiss",
        AlertStatus.DISMISSED,
        [AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED],
        actor=actor,
        note=note,
    )
    alert.dismissed_level = alert.level
    alert.needs_review = False
    return alert


def publish_alert(session: Session, alert: Alert, *, actor: str, note: str) -> Alert:
    if alert.status not in (AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED):
        raise ConflictError(
            f"alert {alert.id} is {alert.status.value}; only new, acknowledged "
            "or escalated alerts can be published"
        )
    publish(session, alert, actor=actor, note=note)
    alert.needs_review = False
    session.flush()
    return alert


def resolve(session: Session, alert: Alert, *, actor: str, note: str) -> Alert:
    was_published = alert.status is AlertStatus.PUBLISHED
    _transition(
        session, alert, "resolve", AlertStatus.RESOLVED, OPEN_STATUSES, actor=actor, note=note
    )
    alert.resolved_at = utc_now()
    alert.version += 1
    if was_published:
        enqueue_for_alert(session, alert, event="alert.resolved")
    return alert


ACTIONS = {
    "acknowledge": acknowledge,
    "escalate": escalate,
    "dismiss": dismiss,
    "publish": publish_alert,
    "resolve": resolve,
}


def subject_of(alert: Alert) -> dict[str, Any]:
    if alert.substance is not None:
        return {
            "type": "substance",
            "name": alert.substance.name,
            "inchikey": alert.substance.inchikey,
            "cluster_id": None,
        }
    cluster: Cluster | None = alert.cluster
    return {
        "type": "cluster",
        "name": cluster_name(cluster) if cluster else "cluster",
        "inchikey": None,
        "cluster_id": alert.cluster_id,
    }


def view(alert: Alert, *, history: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": alert.id,
        "level": alert.level.value,
        "status": alert.status.value,
        "score": alert.score,
        "title": alert.title,
        "summary": alert.summary,
        "created_at": alert.created_at,
        "updated_at": alert.updated_at,
        "published_at": alert.published_at,
        "resolved_at": alert.resolved_at,
        "needs_review": alert.needs_review,
        "countries": alert.countries,
        "subject": subject_of(alert),
        "components": alert.components,
    }
    if history:
        data["history"] = [
            {
                "action": e.action,
                "actor": e.actor,
                "from_status": e.from_status.value if e.from_status else None,
                "to_status": e.to_status.value if e.to_status else None,
                "level": e.level.value if e.level else None,
                "score": e.score,
                "note": e.note,
                "created_at": e.created_at,
            }
            for e in alert.events
        ]
    return data


def score_history(session: Session, subject_key: str, *, limit: int = 400) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(ThreatScore)
        .where(ThreatScore.subject_key == subject_key)
        .order_by(ThreatScore.as_of.desc())
        .limit(limit)
    ).all()
    return [
        {"as_of": row.as_of, "score": row.score, "components": row.components}
        for row in reversed(rows)
    ]
