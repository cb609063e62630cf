"""What the console shows about a subject (substance or cluster): weekly activity with its
aberration threshold, nearest references, cluster members, detections and alerts."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from fastapi import Request
from markupsafe import Markup
from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.orm import Session

from alerts.aberration import ears_c1, farrington_flexible
from alerts.levels import AlertLevel
from app.enrichment import Enricher
from app.jobs import policy_from
from app.models import Alert, Cluster, Detection, Organisation, Substance
from app.models.enums import DetectionContext, DetectionStatus
from app.scoring.facts import week_start
from app.settings import Settings
from app.triage.service import score_history
from app.web.charts import Chart, Series, score_line, weekly_bars
from chemistry.analysis import Analyser
from chemistry.errors import InvalidStructureError
from chemistry.fingerprints import fingerprint, tanimoto
from chemistry.structures import parse, standardise

MIN_WEEKS, MAX_WEEKS = 12, 52
TOP_COUNTRIES = 6
FARRINGTON_WEEKS = 52 * 3 + 3 + 1  # farrington_flexible's history need at its defaults
EARS_BASELINE = 7
CONTEXT_ORDER: tuple[tuple[str | None, str], ...] = (
    (DetectionContext.DEATH.value, "death"),
    (DetectionContext.INTOXICATION.value, "intoxication"),
    (DetectionContext.DRIVING.value, "driving"),
    (DetectionContext.SEIZURE.value, "seizure"),
    (DetectionContext.OTHER.value, "other"),
    (None, "not given"),
)


def analyser_for(request: Request, session: Session) -> Analyser:
    """The service's Analyser over the current reference library (shared with intake)."""
    enricher: Enricher = request.app.state.enricher
    return enricher.catalogue.analyser(session)


def level_lines(settings: Settings) -> list[tuple[str, float]]:
    """(level, threshold) of the alert policy in force, lowest first, for score charts."""
    policy = policy_from(settings)
    return [(level.value, policy.thresholds[level]) for level in sorted(AlertLevel)]


def score_chart(session: Session, subject_key: str, settings: Settings) -> tuple[Markup, bool]:
    """The subject's daily threat scores (last 120) as a chart, and whether there are any."""
    history = score_history(session, subject_key, limit=120)
    points = [(point["as_of"], point["score"]) for point in history]
    return score_line(points, level_lines(settings)), bool(points)


def of_substance(substance_id: int) -> ColumnElement[bool]:
    return Detection.substance_id == substance_id


def of_cluster(cluster_id: int) -> ColumnElement[bool]:
    return Detection.cluster_id == cluster_id


@dataclass(frozen=True, slots=True)
class Activity:
    """Weekly detections of a subject, by country and by context, with a threshold."""

    weeks: tuple[date, ...]
    totals: tuple[int, ...]
    threshold: tuple[float | None, ...]
    method: str
    by_country: Chart
    by_context: Chart
    table: tuple[tuple[date, int, float | None, str], ...]  # week, total, threshold, countries
    total: int
    first_seen: date | None
    last_seen: date | None
    countries: tuple[str, ...]


def weekly_thresholds(history: list[int], shown: int) -> tuple[list[float | None], str]:
    """The count above which each of the last `shown` weeks would alarm.

    With three years of history this is the Farrington flexible upper bound (the weekly
    detector of threat scoring); with less it is EARS C1 on weekly counts, whose limit
    mean + 3 sd of the 7 weeks before is read off the detector by probing it with 0 and 1
    detections (C1 is linear in the count: C1(y) = (y - mean) / sd).
    """
    start = len(history) - shown
    limits: list[float | None] = []
    if start >= FARRINGTON_WEEKS:
        for index in range(start, len(history)):
            result = farrington_flexible(history[: index + 1])
            limits.append(result.threshold if result.enough_history else None)
        return limits, "Farrington flexible upper bound (95%)"
    for index in range(start, len(history)):
        prefix = history[:index]
        zero, one = (
            ears_c1([*prefix, 0], baseline=EARS_BASELINE),
            ears_c1([*prefix, 1], baseline=EARS_BASELINE),
        )
        if not zero.enough_history or one.statistic == zero.statistic:
            limits.append(None)
            continue
        sd = 1.0 / (one.statistic - zero.statistic)
        limits.append(zero.expected + zero.threshold * sd)
    return limits, f"EARS C1 limit: mean + 3 sd of the {EARS_BASELINE} weeks before"


def activity(session: Session, where: ColumnElement[bool], *, today: date) -> Activity:
    """Weekly counts up to this week; the window covers the subject's detections (12-52 weeks)
    and the history before it, back to the first detection in the network, feeds the threshold.
    """
    counted = (Detection.status == DetectionStatus.ACTIVE, where)
    data_start = session.scalar(select(func.min(Detection.detected_on)))
    this_week = week_start(today)
    rows = session.execute(
        select(Detection.detected_on, Detection.country, Detection.context, func.count())
        .where(*counted, Detection.detected_on <= today)
        .group_by(Detection.detected_on, Detection.country, Detection.context)
    ).all()
    first_seen = min((row[0] for row in rows), default=None)
    last_seen = max((row[0] for row in rows), default=None)
    span = ((this_week - week_start(first_seen)).days // 7 + 2) if first_seen else MIN_WEEKS
    shown = max(MIN_WEEKS, min(MAX_WEEKS, span))
    origin = week_start(data_start) if data_start else this_week
    history_weeks = max(shown, (this_week - origin).days // 7 + 1)
    history_weeks = min(history_weeks, FARRINGTON_WEEKS + MAX_WEEKS)
    first_week = this_week - timedelta(weeks=history_weeks - 1)

    totals = [0] * history_weeks
    by_country: dict[str, list[int]] = defaultdict(lambda: [0] * shown)
    by_context: dict[str | None, list[int]] = defaultdict(lambda: [0] * shown)
    country_totals: Counter[str] = Counter()
    for day, country, context, count in rows:
        index = (week_start(day) - first_week).days // 7
        if index < 0:
            continue
        totals[index] += count
        shown_index = index - (history_weeks - shown)
        if shown_index >= 0:
            by_country[country][shown_index] += count
            key = context.value if context is not None else None
            by_context[key][shown_index] += count
            country_totals[country] += count
    weeks = tuple(this_week - timedelta(weeks=shown - 1 - i) for i in range(shown))
    threshold, method = weekly_thresholds(totals, shown)

    top = [country for country, _ in country_totals.most_common(TOP_COUNTRIES)]
    country_series = [Series(country, tuple(by_country[country])) for country in sorted(top)]
    rest = [c for c in by_country if c not in top]
    if rest:
        other = tuple(sum(by_country[c][i] for c in rest) for i in range(shown))
        country_series.append(Series(f"{len(rest)} other countries", other))
    context_series = [
        Series(label, tuple(by_context[key]), css=f"context-{label.replace(' ', '-')}")
        for key, label in CONTEXT_ORDER
        if key in by_context
    ]
    shown_totals = tuple(totals[-shown:])
    countries_per_week = [
        ", ".join(sorted(c for c in by_country if by_country[c][i])) for i in range(shown)
    ]
    return Activity(
        weeks=weeks,
        totals=shown_totals,
        threshold=tuple(threshold),
        method=method,
        by_country=weekly_bars(
            weeks,
            country_series,
            threshold,
            label="Weekly detections by country",
            threshold_label=method,
        ),
        by_context=weekly_bars(
            weeks,
            context_series,
            threshold,
            label="Weekly detections by context",
            threshold_label=method,
        ),
        table=tuple(
            (weeks[i], shown_totals[i], threshold[i], countries_per_week[i]) for i in range(shown)
        ),
        total=sum(count for *_, count in rows),
        first_seen=first_seen,
        last_seen=last_seen,
        countries=tuple(sorted(country_totals)),
    )


@dataclass(frozen=True, slots=True)
class Reference:
    name: str
    inchikey: str
    similarity: float
    substance: Substance | None


def _with_substances(session: Session, pairs: list[tuple[str, str, float]]) -> list[Reference]:
    keys = [inchikey for _, inchikey, _ in pairs]
    found = {
        s.inchikey: s
        for s in session.scalars(select(Substance).where(Substance.inchikey.in_(keys)))
    }
    return [Reference(name, key, similarity, found.get(key)) for name, key, similarity in pairs]


def substance_neighbours(
    session: Session, analyser: Analyser, substance: Substance
) -> list[Reference]:
    """The nearest other references to a substance (Morgan r2 Tanimoto), most similar first."""
    analysis = analyser.analyse(substance.smiles)
    pairs = [
        (n.name, n.inchikey, n.similarity)
        for n in analysis.nearest
        if n.inchikey != substance.inchikey
    ]
    return _with_substances(session, pairs)


def cluster_neighbours(session: Session, cluster: Cluster) -> list[Reference]:
    """The references nearest the cluster's representative, as analysed when it opened."""
    pairs = [
        (str(item.get("name")), str(item.get("inchikey")), float(item.get("similarity", 0.0)))
        for item in cluster.nearest or []
    ]
    return _with_substances(session, pairs)


@dataclass(frozen=True, slots=True)
class Member:
    inchikey: str
    smiles: str
    detections: int
    countries: int
    first_seen: date
    last_seen: date
    similarity: float | None  # to the representative
    representative: bool


def cluster_members(session: Session, cluster: Cluster, *, limit: int = 40) -> list[Member]:
    """The distinct structures of a cluster, most detected first."""
    rows = session.execute(
        select(
            Detection.inchikey,
            func.min(Detection.smiles),
            func.count(),
            func.count(distinct(Detection.country)),
            func.min(Detection.detected_on),
            func.max(Detection.detected_on),
        )
        .where(
            Detection.cluster_id == cluster.id,
            Detection.status == DetectionStatus.ACTIVE,
            Detection.inchikey.is_not(None),
        )
        .group_by(Detection.inchikey)
        .order_by(func.count().desc(), Detection.inchikey)
        .limit(limit)
    ).all()
    members = []
    for inchikey, smiles, count, countries, first, last in rows:
        if inchikey is None:
            continue
        similarity: float | None = None
        if smiles:
            try:
                similarity = tanimoto(cluster.fingerprint, fingerprint(standardise(parse(smiles))))
            except (InvalidStructureError, ValueError):
                similarity = None
        members.append(
            Member(
                inchikey=inchikey,
                smiles=smiles or "",
                detections=count,
                countries=countries,
                first_seen=first,
                last_seen=last,
                similarity=similarity,
                representative=inchikey == cluster.representative_inchikey,
            )
        )
    return members


def recent_detections(
    session: Session, where: ColumnElement[bool], *, limit: int = 25
) -> list[tuple[Detection, str]]:
    """The latest detections with the name of the lab that reported each."""
    rows = session.execute(
        select(Detection, Organisation.name)
        .join(Organisation, Organisation.id == Detection.organisation_id)
        .where(where, Detection.status == DetectionStatus.ACTIVE)
        .order_by(Detection.detected_on.desc(), Detection.id.desc())
        .limit(limit)
    ).all()
    return [(detection, lab) for detection, lab in rows]


def related_alerts(
    session: Session, *, substance_id: int | None = None, cluster_id: int | None = None
) -> list[Alert]:
    query = select(Alert).order_by(Alert.created_at.desc()).limit(20)
    if substance_id is not None:
        query = query.where(Alert.substance_id == substance_id)
    else:
        query = query.where(Alert.cluster_id == cluster_id)
    return list(session.scalars(query))
