"""Aggregate detections into the Facts that scoring needs, for every active subject at once.

A subject is a reference substance (detections matched to it) or a cluster of unidentified
structures. A run issues a handful of GROUP BY queries over the detection table, whatever the
number of subjects, so a pass over a million detections stays in seconds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import InstrumentedAttribute

from alerts.scoring import Facts
from app.models import Cluster, Detection, Substance
from app.models.enums import DetectionContext, DetectionStatus, SubjectType
from chemistry.vocabulary import HIGHLY_POTENT, ControlStatus

DAILY_DAYS = 120
WEEKLY_WEEKS = 3 * 52 + 8  # enough history for three years of comparable weeks
RECENT_DAYS = 90


@dataclass(frozen=True, slots=True)
class Subject:
    key: str  # "substance:<inchikey>" or "cluster:<id>"
    type: SubjectType
    substance_id: int | None
    cluster_id: int | None
    name: str
    inchikey: str | None
    countries: tuple[str, ...] = ()  # every country with a detection, up to as_of


def substance_key(inchikey: str) -> str:
    return f"substance:{inchikey}"


def cluster_key(cluster_id: int) -> str:
    return f"cluster:{cluster_id}"


def _counted(as_of: date) -> tuple[ColumnElement[bool], ...]:
    """The detections that count: active, up to as_of, with a subject."""
    return (
        Detection.status == DetectionStatus.ACTIVE,
        Detection.detected_on <= as_of,
        (Detection.substance_id.is_not(None)) | (Detection.cluster_id.is_not(None)),
    )


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def gather(
    session: Session, as_of: date, *, include: set[str] | None = None
) -> list[tuple[Subject, Facts]]:
    """Facts for every subject with a detection in the last RECENT_DAYS (plus `include` keys)."""
    recent_from = as_of - timedelta(days=RECENT_DAYS - 1)
    history_from = week_start(as_of) - timedelta(weeks=WEEKLY_WEEKS - 1)

    def key_of(substance_id: int | None, cluster_id: int | None) -> tuple[str, int] | None:
        if substance_id is not None:
            return ("s", substance_id)
        if cluster_id is not None:
            return ("c", cluster_id)
        return None

    def grouped(*columns: Any, since: date | None = None) -> list[tuple[Any, ...]]:
        """Rows of (substance_id, cluster_id, *columns) over counted detections, grouped by
        subject plus any plain (non-aggregate) columns given."""
        plain = [c for c in columns if isinstance(c, InstrumentedAttribute)]
        query = select(Detection.substance_id, Detection.cluster_id, *columns).where(
            *_counted(as_of)
        )
        if since is not None:
            query = query.where(Detection.detected_on >= since)
        rows = session.execute(query.group_by(Detection.substance_id, Detection.cluster_id, *plain))
        return [tuple(row) for row in rows]

    # Recent activity and harm context, per subject (a detection belongs to a substance or to a
    # cluster, never both).
    intoxication = Detection.context.in_([DetectionContext.INTOXICATION, DetectionContext.DRIVING])
    recent: dict[tuple[str, int], tuple[int, int, int, int, int]] = {}
    for sid, cid, count, countries, labs, deaths, intox in grouped(
        func.count(),
        func.count(distinct(Detection.country)),
        func.count(distinct(Detection.organisation_id)),
        func.sum(case((Detection.context == DetectionContext.DEATH, 1), else_=0)),
        func.sum(case((intoxication, 1), else_=0)),
        since=recent_from,
    ):
        key = key_of(sid, cid)
        if key is not None:
            recent[key] = (count, countries, labs, int(deaths or 0), int(intox or 0))
    wanted = set(recent)
    for extra in include or set():
        kind, _, ident = extra.partition(":")
        if kind == "cluster" and ident.isdigit():
            wanted.add(("c", int(ident)))
        elif kind == "substance":
            sid = session.scalar(select(Substance.id).where(Substance.inchikey == ident))
            if sid is not None:
                wanted.add(("s", sid))
    if not wanted:
        return []

    # Daily counts over the weekly history window (weekly and daily series are cut from them).
    daily: dict[tuple[str, int], dict[date, int]] = defaultdict(dict)
    for sid, cid, day, count in grouped(Detection.detected_on, func.count(), since=history_from):
        key = key_of(sid, cid)
        if key is not None and key in wanted:
            daily[key][day] = count

    # First detection ever and totals.
    first: dict[tuple[str, int], tuple[date, int]] = {}
    for sid, cid, first_on, total in grouped(func.min(Detection.detected_on), func.count()):
        key = key_of(sid, cid)
        if key is not None and key in wanted:
            first[key] = (first_on, total)

    # Every country of each subject, and those whose first detection is recent.
    new_countries: dict[tuple[str, int], set[str]] = defaultdict(set)
    countries_of: dict[tuple[str, int], set[str]] = defaultdict(set)
    for sid, cid, country, first_on in grouped(Detection.country, func.min(Detection.detected_on)):
        key = key_of(sid, cid)
        if key is None or key not in wanted:
            continue
        countries_of[key].add(country)
        if first_on > as_of - timedelta(days=28):
            new_countries[key].add(country)

    # The network's first day of data: days before it are unknown, not zero.
    data_start = session.scalar(select(func.min(Detection.detected_on)).where(*_counted(as_of)))
    subjects = _describe(session, wanted)
    result: list[tuple[Subject, Facts]] = []
    for key in sorted(wanted):
        if key not in subjects or key not in first:
            continue
        subject, tier, category, controlled, potent = subjects[key]
        subject = replace(subject, countries=tuple(sorted(countries_of.get(key, ()))))
        counts, countries, labs, deaths, intox = recent.get(key, (0, 0, 0, 0, 0))
        days = daily.get(key, {})
        result.append(
            (
                subject,
                Facts(
                    subject_type=subject.type.value,
                    as_of=as_of,
                    potency_tier=tier,
                    category=category,
                    controlled=controlled,
                    detections_90d=counts,
                    countries_90d=countries,
                    labs_90d=labs,
                    deaths_90d=deaths,
                    intoxications_90d=intox,
                    quarters_2y=_quarters(days, as_of),
                    daily_counts=tuple(
                        days.get(as_of - timedelta(days=offset), 0)
                        for offset in range(DAILY_DAYS - 1, -1, -1)
                    ),
                    weekly_counts=_weekly(days, as_of),
                    total_detections=first[key][1],
                    first_detected_on=first[key][0],
                    new_countries_28d=len(new_countries.get(key, set())),
                    potent_similarity=potent,
                    data_start=data_start,
                ),
            )
        )
    return result


def _quarters(days: dict[date, int], as_of: date) -> int:
    since = as_of - timedelta(days=730)
    return len(
        {(day.year, (day.month - 1) // 3) for day, count in days.items() if count and day > since}
    )


def _weekly(days: dict[date, int], as_of: date) -> tuple[int, ...]:
    last = week_start(as_of)
    weeks = [0] * WEEKLY_WEEKS
    for day, count in days.items():
        index = WEEKLY_WEEKS - 1 - (last - week_start(day)).days // 7
        if 0 <= index < WEEKLY_WEEKS:
            weeks[index] += count
    return tuple(weeks)


def _describe(
    session: Session, wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], tuple[Subject, str, str | None, bool, float]]:
    substance_ids = [ident for kind, ident in wanted if kind == "s"]
    cluster_ids = [ident for kind, ident in wanted if kind == "c"]
    described: dict[tuple[str, int], tuple[Subject, str, str | None, bool, float]] = {}
    for chunk in _chunks(substance_ids):
        for substance in session.scalars(select(Substance).where(Substance.id.in_(chunk))):
            potent = 1.0 if substance.potency_tier in HIGHLY_POTENT else substance.potent_similarity
            described[("s", substance.id)] = (
                Subject(
                    substance_key(substance.inchikey),
                    SubjectType.SUBSTANCE,
                    substance.id,
                    None,
                    substance.name,
                    substance.inchikey,
                ),
                substance.potency_tier.value,
                substance.category.value,
                substance.control is not ControlStatus.NONE,
                potent,
            )
    for chunk in _chunks(cluster_ids):
        for cluster in session.scalars(select(Cluster).where(Cluster.id.in_(chunk))):
            described[("c", cluster.id)] = (
                Subject(
                    cluster_key(cluster.id),
                    SubjectType.CLUSTER,
                    None,
                    cluster.id,
                    cluster_name(cluster),
                    None,
                ),
                cluster.potency_tier.value,
                None,
                cluster.controlled_analogue,
                cluster.potent_similarity,
            )
    return described


def cluster_name(cluster: Cluster) -> str:
    group = cluster.chemical_group.value.replace("_", " ") if cluster.chemical_group else "unknown"
    return f"unidentified {group} cluster #{cluster.id}"


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]
