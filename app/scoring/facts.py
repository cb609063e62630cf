"""Aggregate detections into the Facts that scoring needs, for every active subject at once.

A subject is a reference substance (detections matched to it) or a cluster of unidentified
structures. A run issues a handful of GROUP BY queries over the detection table, whatever the
number of subjects, so a pass over a million detections stays in seconds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, case, distinct, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import InstrumentedAttribute

from alerts.scoring import Facts
from app.models import Cluster, Detection, Substance
from app.models.enums import DetectionContext, DetectionStatus, SubjectType
from chemistry.analysis import ANALOGUE_THRESHOLD
from chemistry.fingerprints import DEFAULT_SPEC
from chemistry.similarity import SimilarityIndex
from chemistry.vocabulary import HIGHLY_POTENT, Category, ControlStatus

DAILY_DAYS = 120
WEEKLY_WEEKS = 3 * 52 + 8  # enough history for three years of comparable weeks
RECENT_DAYS = 90
_T = TypeVar("_T")


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


def _counted(as_of: date, *, scan: bool = False) -> tuple[ColumnElement[bool], ...]:
    """The detections that count: active, up to as_of, with a subject.

    With scan=True the date bound is written so that no index can serve it (coalesce() of a
    NOT NULL column is the column itself, on every backend): for a query that reads nearly the
    whole table, SQLite otherwise drives it through an index, a B-tree seek per row, which
    costs twice a plain scan (bench/scoring.py).
    """
    return (
        Detection.status == DetectionStatus.ACTIVE,
        (func.coalesce(Detection.detected_on, as_of) if scan else Detection.detected_on) <= as_of,
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

    # One integer per subject: +substance id, or -cluster id (a detection belongs to a
    # substance or to a cluster, never both; counted detections have one of them). A computed
    # grouping key also keeps SQLite from reading the table in the order of an index.
    subject_id = func.coalesce(Detection.substance_id, -Detection.cluster_id)

    def key_of(ident: int) -> tuple[str, int]:
        return ("s", ident) if ident > 0 else ("c", -ident)

    def grouped(*columns: Any, since: date | None = None) -> list[tuple[Any, ...]]:
        """Rows of (subject id, *columns) over counted detections, grouped by subject plus any
        plain (non-aggregate) columns given. Without `since`, the query is a full-table scan."""
        plain = [c for c in columns if isinstance(c, InstrumentedAttribute)]
        query = select(subject_id, *columns).where(*_counted(as_of, scan=since is None))
        if since is not None:
            query = query.where(Detection.detected_on >= since)
        rows = session.execute(query.group_by(subject_id, *plain))
        return [tuple(row) for row in rows]

    # Recent activity and harm context, per subject (a detection belongs to a substance or to a
    # cluster, never both).
    intoxication = Detection.context.in_([DetectionContext.INTOXICATION, DetectionContext.DRIVING])
    recent: dict[tuple[str, int], tuple[int, int, int, int, int]] = {}
    for ident, count, countries, labs, deaths, intox in grouped(
        func.count(),
        func.count(distinct(Detection.country)),
        func.count(distinct(Detection.organisation_id)),
        func.sum(case((Detection.context == DetectionContext.DEATH, 1), else_=0)),
        func.sum(case((intoxication, 1), else_=0)),
        since=recent_from,
    ):
        recent[key_of(ident)] = (count, countries, labs, int(deaths or 0), int(intox or 0))
    wanted = set(recent)
    inchikeys = []
    for extra in include or set():
        kind, _, ident = extra.partition(":")
        if kind == "cluster" and ident.isdigit():
            wanted.add(("c", int(ident)))
        elif kind == "substance":
            inchikeys.append(ident)
    for chunk in _chunks(sorted(inchikeys)):
        wanted.update(
            ("s", sid)
            for sid in session.scalars(select(Substance.id).where(Substance.inchikey.in_(chunk)))
        )
    if not wanted:
        return []

    # Daily counts, in one scan: the first detection and the total from all of them, the daily
    # and weekly series from those in the weekly history window.
    daily: dict[tuple[str, int], dict[date, int]] = defaultdict(dict)
    first: dict[tuple[str, int], tuple[date, int]] = {}
    for ident, day, count in grouped(Detection.detected_on, func.count()):
        key = key_of(ident)
        if key not in wanted:
            continue
        if day >= history_from:
            daily[key][day] = count
        earliest, total = first.get(key, (day, 0))
        first[key] = (min(earliest, day), total + count)

    # Every country of each subject, and those whose first detection is recent.
    new_countries: dict[tuple[str, int], set[str]] = defaultdict(set)
    countries_of: dict[tuple[str, int], set[str]] = defaultdict(set)
    for ident, country, first_on in grouped(Detection.country, func.min(Detection.detected_on)):
        key = key_of(ident)
        if key not in wanted:
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
        subject, tier, category, controlled, analogue, potent = subjects[key]
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
                    daily_counts=_daily(days, as_of),
                    weekly_counts=_weekly(days, as_of),
                    total_detections=first[key][1],
                    first_detected_on=first[key][0],
                    new_countries_28d=len(new_countries.get(key, set())),
                    potent_similarity=potent,
                    data_start=data_start,
                    controlled_analogue=analogue,
                ),
            )
        )
    return result


def _quarters(days: dict[date, int], as_of: date) -> int:
    since = as_of - timedelta(days=730)
    return len(
        {(day.year, (day.month - 1) // 3) for day, count in days.items() if count and day > since}
    )


def _daily(days: dict[date, int], as_of: date) -> tuple[int, ...]:
    """The last DAILY_DAYS days' counts, oldest first, ending on as_of."""
    end = as_of.toordinal()
    counts = [0] * DAILY_DAYS
    for day, count in days.items():
        index = DAILY_DAYS - 1 - (end - day.toordinal())
        if 0 <= index < DAILY_DAYS:
            counts[index] = count
    return tuple(counts)


def _weekly(days: dict[date, int], as_of: date) -> tuple[int, ...]:
    last = as_of.toordinal() - as_of.weekday()  # the day number of week_start(as_of)
    weeks = [0] * WEEKLY_WEEKS
    for day, count in days.items():
        index = WEEKLY_WEEKS - 1 - (last - (day.toordinal() - day.weekday())) // 7
        if 0 <= index < WEEKLY_WEEKS:
            weeks[index] += count
    return tuple(weeks)


Description = tuple[Subject, str, str | None, bool, bool, float]


def _describe(session: Session, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], Description]:
    """Per subject: potency tier, category, controlled, controlled analogue, potent similarity."""
    substance_ids = [ident for kind, ident in wanted if kind == "s"]
    cluster_ids = [ident for kind, ident in wanted if kind == "c"]
    described: dict[tuple[str, int], Description] = {}
    substances: list[Substance] = []
    for chunk in _chunks(substance_ids):
        substances += session.scalars(select(Substance).where(Substance.id.in_(chunk)))
    analogues = _controlled_analogues(session, substances)
    for substance in substances:
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
            substance.id in analogues,
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
                False,  # an unidentified structure is not itself a controlled substance
                cluster.controlled_analogue,
                cluster.potent_similarity,
            )
    return described


def _controlled_analogues(session: Session, substances: list[Substance]) -> set[int]:
    """Ids of the uncontrolled NPS among `substances` that have a controlled reference (not a
    cutting agent) at Tanimoto >= ANALOGUE_THRESHOLD: the test a new cluster gets when it is
    opened (Catalogue.traits sets Cluster.controlled_analogue), applied to named substances,
    so that a new designer analogue scores alike whether or not the library knows its name."""
    candidates = [
        s
        for s in substances
        if s.control is ControlStatus.NONE
        and s.category is Category.NPS
        and s.fingerprint is not None
        and s.fingerprint_spec == DEFAULT_SPEC.key
    ]
    if not candidates:
        return set()
    controlled = _controlled_references(session)
    return {s.id for s in candidates if controlled.has_analogue(s.inchikey, s.fingerprint)}


class _ControlledReferences:
    """The controlled references of one library version, and the answers given so far."""

    def __init__(self, keys: list[str], fingerprints: list[bytes]) -> None:
        self.index = SimilarityIndex(DEFAULT_SPEC)
        self.index.add(keys, fingerprints)
        self.answers: dict[str, bool] = {}
        self.lock = threading.Lock()

    def has_analogue(self, inchikey: str, fingerprint: bytes | None) -> bool:
        with self.lock:
            answer = self.answers.get(inchikey)
            if answer is None:
                hits = self.index.threshold(fingerprint, ANALOGUE_THRESHOLD) if fingerprint else []
                answer = self.answers[inchikey] = any(hit.key != inchikey for hit in hits)
            return answer


_CONTROLLED: OrderedDict[tuple[str, int, str], _ControlledReferences] = OrderedDict()
_CONTROLLED_LOCK = threading.Lock()


def _controlled_references(session: Session) -> _ControlledReferences:
    """The current controlled references, kept per database and library version: a scoring
    pass runs every 15 minutes (a backtest one per simulated day) and the library changes
    rarely, so each substance is compared with them once per version."""
    of_controlled = (
        Substance.control != ControlStatus.NONE,
        Substance.category != Category.CUTTING_AGENT,
        Substance.retired_at.is_(None),
        Substance.fingerprint.is_not(None),
        Substance.fingerprint_spec == DEFAULT_SPEC.key,
    )
    count, latest = session.execute(
        select(func.count(), func.max(Substance.updated_at)).where(*of_controlled)
    ).one()
    version = (str(session.get_bind().engine.url), int(count), str(latest))
    with _CONTROLLED_LOCK:
        cached = _CONTROLLED.get(version)
        if cached is not None:
            _CONTROLLED.move_to_end(version)
            return cached
    rows = session.execute(select(Substance.inchikey, Substance.fingerprint).where(*of_controlled))
    pairs = [(row.inchikey, bytes(row.fingerprint)) for row in rows]
    references = _ControlledReferences([key for key, _ in pairs], [fp for _, fp in pairs])
    with _CONTROLLED_LOCK:
        _CONTROLLED[version] = references
        while len(_CONTROLLED) > 4:
            _CONTROLLED.popitem(last=False)
    return references


def cluster_name(cluster: Cluster) -> str:
    group = cluster.chemical_group.value.replace("_", " ") if cluster.chemical_group else "unknown"
    return f"unidentified {group} cluster #{cluster.id}"


def _chunks(ids: list[_T], size: int = 500) -> list[list[_T]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]
