"""One scoring pass: score every active subject, store the day's score, and apply alert rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from alerts.levels import AlertLevel
from alerts.rules import AlertState, Decision, Policy, decide
from alerts.scoring import ScoringParams, ThreatScore, Weights, score
from app.db import utc_now
from app.models import Alert, AlertEvent
from app.models import ThreatScore as ThreatScoreRow
from app.models.enums import AlertStatus
from app.outbox import enqueue_for_alert
from app.scoring.facts import Subject, gather

OPEN_STATUSES = (
    AlertStatus.NEW,
    AlertStatus.ACKNOWLEDGED,
    AlertStatus.ESCALATED,
    AlertStatus.PUBLISHED,
)
SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Scored:
    subject: Subject
    threat: ThreatScore
    decision: Decision
    alert_id: int | None


def run(
    session: Session,
    as_of: date,
    *,
    policy: Policy,
    weights: Weights,
    params: ScoringParams,
    now: datetime | None = None,
) -> list[Scored]:
    """Score every subject as of the end of `as_of`, using detections up to that day only."""
    now = now or utc_now()
    # Locked until the pass commits (PostgreSQL; SQLite's writers take turns anyway): an
    # officer's action at the same moment waits for the pass and then applies to what it wrote,
    # instead of being overwritten by it. Actions lock the one alert they change, so the two
    # cannot wait on each other.
    open_alerts = {
        alert.subject_key: alert
        for alert in session.scalars(
            select(Alert).where(Alert.status.in_(OPEN_STATUSES)).with_for_update(of=Alert)
        )
    }
    past = _AlertHistory.load(session)
    scored: list[tuple[Subject, ThreatScore, Decision, Alert | None]] = []
    score_rows: list[dict[str, object]] = []
    for subject, facts in gather(session, as_of, include=set(open_alerts)):
        threat = score(facts, weights, params)
        score_rows.append(_score_row(subject, as_of, threat, now))
        alert = open_alerts.get(subject.key)
        state = (
            AlertState(level=alert.level, last_above_on=alert.last_above_on or as_of)
            if alert is not None
            else None
        )
        decision = decide(threat.score, state, as_of, policy)
        alert = _apply(
            session,
            subject,
            list(subject.countries),
            threat,
            decision,
            alert,
            as_of,
            now,
            policy,
            past,
        )
        scored.append((subject, threat, decision, alert))
    _store_scores(session, as_of, score_rows)
    session.flush()  # new alerts get their ids
    return [
        Scored(subject, threat, decision, alert.id if alert else None)
        for subject, threat, decision, alert in scored
    ]


@dataclass(frozen=True, slots=True)
class _AlertHistory:
    """Every subject's earlier alerts, read once per run rather than once per opened alert:
    how many it has had (for the dedup key), the id of its latest, and its latest dismissal."""

    counts: dict[str, int]
    latest_id: dict[str, int]
    dismissed: dict[str, tuple[int, AlertLevel | None]]  # subject_key -> (id, dismissed_level)

    @classmethod
    def load(cls, session: Session) -> _AlertHistory:
        counts: dict[str, int] = {}
        latest_id: dict[str, int] = {}
        for key, count, latest in session.execute(
            select(Alert.subject_key, func.count(), func.max(Alert.id)).group_by(Alert.subject_key)
        ):
            counts[key] = count
            latest_id[key] = latest
        dismissed = {
            key: (ident, level)
            for key, ident, level in session.execute(
                select(Alert.subject_key, Alert.id, Alert.dismissed_level)
                .where(Alert.status == AlertStatus.DISMISSED)
                .order_by(Alert.id)
            )
        }  # ordered by id, so each subject keeps its latest dismissal
        return cls(counts, latest_id, dismissed)


def _score_row(
    subject: Subject, as_of: date, threat: ThreatScore, now: datetime
) -> dict[str, object]:
    return {
        "subject_type": subject.type,
        "subject_key": subject.key,
        "substance_id": subject.substance_id,
        "cluster_id": subject.cluster_id,
        "scored_at": now,
        "as_of": as_of,
        "window_days": 90,
        "score": threat.score,
        "components": threat.as_dicts(),
    }


def _store_scores(session: Session, as_of: date, rows: list[dict[str, object]]) -> None:
    """The day's scores replace any stored earlier that day for the same subjects (one row per
    subject and day): a few DELETE ... IN statements and one executemany INSERT."""
    keys = [str(row["subject_key"]) for row in rows]
    for start in range(0, len(keys), 500):
        session.execute(
            delete(ThreatScoreRow).where(
                ThreatScoreRow.as_of == as_of,
                ThreatScoreRow.subject_key.in_(keys[start : start + 500]),
            )
        )
    if rows:
        session.execute(insert(ThreatScoreRow), rows)


def _title(subject: Subject, level: AlertLevel) -> str:
    return f"{level.value.capitalize()}: {subject.name}"


def _summary(subject: Subject, threat: ThreatScore, countries: list[str]) -> str:
    strongest = sorted(threat.components, key=lambda c: c.points, reverse=True)[:3]
    reasons = "; ".join(f"{c.name}: {c.reason}" for c in strongest)
    where = ", ".join(countries) if countries else "no country yet"
    return f"{subject.name} scored {threat.score:.1f}/100 (detected in {where}). {reasons}."


def _apply(
    session: Session,
    subject: Subject,
    countries: list[str],
    threat: ThreatScore,
    decision: Decision,
    alert: Alert | None,
    as_of: date,
    now: datetime,
    policy: Policy,
    past: _AlertHistory,
) -> Alert | None:
    holds_level = threat.score >= policy.hold_line
    if decision.action == "open" and decision.level is not None:
        if _suppressed_by_dismissal(past, subject, decision.level):
            return None
        sequence = past.counts.get(subject.key, 0) + 1
        alert = Alert(
            dedup_key=f"{subject.key}#{sequence}",
            subject_key=subject.key,
            subject_type=subject.type,
            substance_id=subject.substance_id,
            cluster_id=subject.cluster_id,
            level=decision.level,
            status=AlertStatus.NEW,
            score=threat.score,
            title=_title(subject, decision.level),
            summary=_summary(subject, threat, countries),
            components=threat.as_dicts(),
            countries=countries,
            needs_review=decision.needs_review,
            last_above_on=as_of,
            created_at=now,
            updated_at=now,
        )
        session.add(alert)
        _event(session, alert, "open", None, AlertStatus.NEW, decision, now)
        if decision.publish_now:
            session.flush()  # the outbox rows name the alert by id
            publish(session, alert, actor=SYSTEM, note="published at once by level policy", now=now)
        return alert
    if alert is None:
        return None
    alert.score = threat.score
    alert.components = threat.as_dicts()
    alert.countries = countries
    alert.summary = _summary(subject, threat, countries)
    alert.updated_at = now
    if holds_level:
        alert.last_above_on = as_of
    if decision.action == "escalate" and decision.level is not None:
        alert.level = decision.level
        alert.title = _title(subject, decision.level)
        alert.version += 1
        alert.needs_review = alert.needs_review or decision.needs_review
        _event(session, alert, "escalate_level", alert.status, alert.status, decision, now)
        if alert.status is AlertStatus.PUBLISHED:
            enqueue_for_alert(session, alert, event="alert.updated", now=now)
        elif decision.publish_now:
            publish(session, alert, actor=SYSTEM, note="published at once by level policy", now=now)
    elif decision.action == "resolve":
        was_published = alert.status is AlertStatus.PUBLISHED
        previous = alert.status
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = now
        alert.version += 1
        _event(session, alert, "resolve", previous, AlertStatus.RESOLVED, decision, now)
        if was_published:
            enqueue_for_alert(session, alert, event="alert.resolved", now=now)
    return alert


def _suppressed_by_dismissal(past: _AlertHistory, subject: Subject, level: AlertLevel) -> bool:
    """An officer's dismissal holds until the subject reaches a higher level than dismissed."""
    dismissed = past.dismissed.get(subject.key)
    if dismissed is None or dismissed[1] is None:
        return False
    dismissed_id, dismissed_level = dismissed
    later = past.latest_id.get(subject.key, dismissed_id) > dismissed_id
    return not later and level <= dismissed_level


def _event(
    session: Session,
    alert: Alert,
    action: str,
    from_status: AlertStatus | None,
    to_status: AlertStatus | None,
    decision: Decision,
    now: datetime,
) -> None:
    session.add(
        AlertEvent(
            alert=alert,
            action=action,
            actor=SYSTEM,
            from_status=from_status,
            to_status=to_status,
            level=alert.level,
            score=alert.score,
            note=decision.reason,
            created_at=now,
        )
    )


def publish(
    session: Session, alert: Alert, *, actor: str, note: str, now: datetime | None = None
) -> None:
    """Publish an alert: its deliveries are written to the outbox in the same transaction."""
    now = now or utc_now()
    previous = alert.status
    alert.status = AlertStatus.PUBLISHED
    alert.published_at = now
    alert.updated_at = now
    session.add(
        AlertEvent(
            alert=alert,
            action="publish",
            actor=actor,
            from_status=previous,
            to_status=AlertStatus.PUBLISHED,
            level=alert.level,
            score=alert.score,
            note=note,
            created_at=now,
        )
    )
    enqueue_for_alert(session, alert, event="alert.published", now=now)
