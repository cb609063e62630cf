"""Scheduled jobs: thin functions that open a transaction, load facts, call pure code, write."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy.orm import Session, sessionmaker

from alerts.levels import AlertLevel
from alerts.rules import Policy
from alerts.scoring import ScoringParams, Weights
from app import analysis_store
from app.db import utc_now
from app.detections.idempotency import purge_expired
from app.scoring import service as scoring
from app.settings import Settings

logger = logging.getLogger("sentinel.jobs")


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job needs; built once per process and passed to APScheduler as an argument."""

    sessions: sessionmaker[Session]
    settings: Settings


def weights_from(settings: Settings) -> Weights:
    return dataclasses.replace(Weights(), **settings.scoring_weights)


def policy_from(settings: Settings) -> Policy:
    default = Policy()
    thresholds = dict(default.thresholds)
    for level, value in settings.alert_thresholds.items():
        thresholds[AlertLevel(level)] = value
    return Policy(
        thresholds=thresholds,
        hysteresis=default.hysteresis
        if settings.alert_hysteresis is None
        else settings.alert_hysteresis,
        quiet_days=default.quiet_days
        if settings.alert_quiet_days is None
        else settings.alert_quiet_days,
        publish_immediately=default.publish_immediately,
        min_level=default.min_level,
    )


def end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


def score_threats(context: JobContext, as_of: date | None = None) -> list[scoring.Scored]:
    """Score every active subject as of `as_of` (default: today, UTC) and apply alert rules."""
    day = as_of or utc_now().date()
    now = end_of(day) if as_of is not None else utc_now()
    with context.sessions.begin() as session:
        results = scoring.run(
            session,
            day,
            policy=policy_from(context.settings),
            weights=weights_from(context.settings),
            params=ScoringParams(),
            now=now,
        )
    opened = sum(1 for r in results if r.decision.action in ("open", "escalate"))
    logger.info(
        "scored %d subjects as of %s; %d alerts opened or escalated", len(results), day, opened
    )
    return results


def deliver(context: JobContext) -> None:
    """Send what is due in the outbox (one pass)."""
    from app.delivery import deliver_due

    result = deliver_due(context.sessions, context.settings)
    if result.claimed:
        logger.info("delivery pass: %s", result)


def purge(context: JobContext) -> int:
    """Housekeeping: drop idempotency records and stored analyses past their retention."""
    with context.sessions.begin() as session:
        return purge_expired(session) + analysis_store.purge_expired(session)
