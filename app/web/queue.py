"""The alert queue: open alerts by level then score, with filters, counts and score trends.

Three queries whatever the queue's length: the alerts with their subjects (joined), the last
scores of their subjects (a window function), and the countries of open alerts for the filter.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, contains_eager

from alerts.levels import AlertLevel
from app.models import Alert, Cluster, Substance, ThreatScore
from app.models.enums import AlertStatus, SubjectType
from app.scoring.facts import cluster_name
from app.scoring.service import OPEN_STATUSES
from chemistry.vocabulary import ChemicalGroup

QUEUE_LIMIT = 500
TREND_POINTS = 8  # the last eight daily scores of each subject
TREND_DAYS = 7  # compare the latest score with the one a week before
TREND_STEP = 3.0  # points of change that count as rising or falling

_LEVEL_RANK = case({level: level.rank for level in AlertLevel}, value=Alert.level, else_=-1)


@dataclass(frozen=True, slots=True)
class QueueFilters:
    level: AlertLevel | None = None
    status: str = "open"  # "open", "all" or an AlertStatus value
    group: ChemicalGroup | None = None
    country: str | None = None
    subject_type: SubjectType | None = None

    @classmethod
    def parse(cls, params: dict[str, str]) -> QueueFilters:
        """From query parameters; unknown values are ignored (the filter is off)."""

        def pick(enum: Any, name: str) -> Any:
            try:
                return enum(params[name]) if params.get(name) else None
            except ValueError:
                return None

        status = params.get("status") or "open"
        if status not in ("open", "all") and status not in {s.value for s in AlertStatus}:
            status = "open"
        country = (params.get("country") or "").strip().upper()
        return cls(
            level=pick(AlertLevel, "level"),
            status=status,
            group=pick(ChemicalGroup, "group"),
            country=country if len(country) == 2 and country.isalpha() else None,
            subject_type=pick(SubjectType, "subject_type"),
        )

    @property
    def active(self) -> bool:
        return self != QueueFilters()


@dataclass(frozen=True, slots=True)
class Trend:
    direction: str  # "up", "down", "steady", "new" or "none"
    delta: float
    since: date | None

    @property
    def symbol(self) -> str:
        symbols = {"up": "\u25b2", "down": "\u25bc", "steady": "\u25b6", "new": "\u25cf"}
        return symbols.get(self.direction, "\u2013")  # triangles, a dot, or an en dash

    @property
    def label(self) -> str:
        if self.direction == "none":
            return "no score history"
        if self.direction == "new":
            return "first scored today"
        word = {"up": "rising", "down": "falling", "steady": "steady"}[self.direction]
        when = self.since.isoformat() if self.since else "earlier"
        return f"{word}: {self.delta:+.1f} points since {when}"


@dataclass(frozen=True, slots=True)
class QueueRow:
    alert: Alert
    name: str
    unidentified: bool
    inchikey: str | None  # the structure to draw
    group: str | None
    trend: Trend


def subject_name(alert: Alert) -> tuple[str, bool]:
    """The subject's name, and whether it is an unidentified cluster."""
    if alert.substance is not None:
        return alert.substance.name, False
    if alert.cluster is not None:
        return cluster_name(alert.cluster), True
    return "unidentified cluster", True


def subject_structure(alert: Alert) -> tuple[str | None, str | None]:
    """(InChIKey to draw, chemical group) of the alert's subject."""
    if alert.substance is not None:
        return alert.substance.inchikey, alert.substance.chemical_group.value
    if alert.cluster is not None:
        group = alert.cluster.chemical_group
        return alert.cluster.representative_inchikey, group.value if group else None
    return None, None


def load_queue(session: Session, filters: QueueFilters) -> tuple[list[QueueRow], bool]:
    """The queue's rows (at most QUEUE_LIMIT) and whether more were left out."""
    query = (
        select(Alert)
        .outerjoin(Substance, Alert.substance_id == Substance.id)
        .outerjoin(Cluster, Alert.cluster_id == Cluster.id)
        .options(contains_eager(Alert.substance), contains_eager(Alert.cluster))
    )
    if filters.status == "open":
        query = query.where(Alert.status.in_(OPEN_STATUSES))
    elif filters.status != "all":
        query = query.where(Alert.status == AlertStatus(filters.status))
    if filters.level is not None:
        query = query.where(Alert.level == filters.level)
    if filters.subject_type is not None:
        query = query.where(Alert.subject_type == filters.subject_type)
    if filters.group is not None:
        query = query.where(
            or_(Substance.chemical_group == filters.group, Cluster.chemical_group == filters.group)
        )
    query = query.order_by(_LEVEL_RANK.desc(), Alert.score.desc(), Alert.id.desc())
    if filters.country is None:
        alerts = list(session.scalars(query.limit(QUEUE_LIMIT + 1)).unique())
    else:
        # Countries are a JSON list: filtered here, the same way on SQLite and PostgreSQL.
        alerts = [
            alert
            for alert in session.scalars(query).unique()
            if filters.country in (alert.countries or [])
        ][: QUEUE_LIMIT + 1]
    truncated = len(alerts) > QUEUE_LIMIT
    alerts = alerts[:QUEUE_LIMIT]
    trends = score_trends(session, [alert.subject_key for alert in alerts])
    rows = []
    for alert in alerts:
        name, unidentified = subject_name(alert)
        inchikey, group = subject_structure(alert)
        rows.append(
            QueueRow(
                alert=alert,
                name=name,
                unidentified=unidentified,
                inchikey=inchikey,
                group=group,
                trend=trends.get(alert.subject_key, Trend("none", 0.0, None)),
            )
        )
    return rows, truncated


def score_trends(session: Session, subject_keys: list[str]) -> dict[str, Trend]:
    """Each subject's latest score against the one TREND_DAYS before (or its oldest recent)."""
    points: dict[str, list[tuple[date, float]]] = defaultdict(list)
    for chunk in _chunks(sorted(set(subject_keys))):
        ranked = (
            select(
                ThreatScore.subject_key,
                ThreatScore.as_of,
                ThreatScore.score,
                func.row_number()
                .over(partition_by=ThreatScore.subject_key, order_by=ThreatScore.as_of.desc())
                .label("rank"),
            )
            .where(ThreatScore.subject_key.in_(chunk))
            .subquery()
        )
        rows = session.execute(
            select(ranked.c.subject_key, ranked.c.as_of, ranked.c.score).where(
                ranked.c.rank <= TREND_POINTS
            )
        )
        for key, as_of, score in rows:
            points[key].append((as_of, score))
    return {key: trend_of(series) for key, series in points.items()}


def trend_of(series: list[tuple[date, float]]) -> Trend:
    ordered = sorted(series)
    if not ordered:
        return Trend("none", 0.0, None)
    latest_day, latest = ordered[-1]
    earlier = [p for p in ordered if p[0] <= latest_day - timedelta(days=TREND_DAYS)]
    base = earlier[-1] if earlier else ordered[0]
    if base[0] == latest_day:
        return Trend("new", 0.0, None)
    delta = latest - base[1]
    direction = "up" if delta >= TREND_STEP else "down" if delta <= -TREND_STEP else "steady"
    return Trend(direction, delta, base[0])


def open_countries(session: Session) -> list[str]:
    countries: set[str] = set()
    for (values,) in session.execute(
        select(Alert.countries).where(Alert.status.in_(OPEN_STATUSES))
    ):
        countries.update(values or [])
    return sorted(countries)


def _chunks(keys: list[str], size: int = 500) -> list[list[str]]:
    return [keys[start : start + size] for start in range(0, len(keys), size)]
