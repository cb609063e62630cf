"""Backtests: replay scenario files through the real intake and scoring on a simulated clock.

A scenario (JSON, see scenarios/README.md) describes detection streams: a substance (SMILES,
InChI or name), and phases of reporting per country with a weekly rate, growth, harm contexts
and optional one-day bursts. The runner builds a fresh SQLite database with the reference
library, creates one lab per country, and for each simulated day posts that day's detections
through the detection service (the code behind POST /v1/detections/batch) and runs the scoring
job as of that day. It reports, per stream, when each alert level was first reached relative to
the stream's first and third detections, and checks the scenario's expectations.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.levels import AlertLevel
from app.db import make_engine, make_sessionmaker
from app.deps import Principal
from app.detections import service
from app.enrichment import Enricher
from app.jobs import JobContext, score_threats
from app.migrate import upgrade
from app.models import Alert, AlertEvent, Detection, Organisation
from app.models.enums import ApiRole, OrganisationKind
from app.scoring.facts import cluster_key, substance_key
from app.settings import Settings
from app.substances.loader import load_library_into
from reference_standards import Library, load_library


@dataclass(frozen=True, slots=True)
class Phase:
    country: str
    from_day: int
    to_day: int
    per_week: float = 0.0
    growth_per_week: float = 0.0  # multiplicative: 0.2 means +20% a week
    seasonal: float = 0.0  # amplitude of a yearly sine on the rate (0.3 = +/-30%)
    contexts: dict[str, float] = field(default_factory=dict)  # context -> probability
    sample_type: str = "seizure"
    bursts: tuple[tuple[int, int], ...] = ()  # (day, count)


@dataclass(frozen=True, slots=True)
class Stream:
    id: str
    substance: dict[str, str]
    phases: tuple[Phase, ...]
    emerging: bool = False
    warning_within: tuple[str, int] | None = None  # ("first" | "third", days)
    must_stay_below: str | None = None  # a level this stream must not reach


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    basis: str
    start: date
    days: int
    seed: int
    streams: tuple[Stream, ...]
    max_false_warnings: int | None = None  # warning-or-higher alerts on non-emerging streams


def read_scenario(path: Path) -> Scenario:
    data = json.loads(path.read_text(encoding="utf-8"))
    streams = []
    for raw in data["streams"]:
        # A phase may name one "country" or several "countries" (one phase each).
        expanded = [
            p | {"country": country}
            for p in raw["phases"]
            for country in p.get("countries", [p.get("country")])
        ]
        phases = tuple(
            Phase(
                country=p["country"],
                from_day=p.get("from_day", 0),
                to_day=p.get("to_day", data["days"]),
                per_week=p.get("per_week", 0.0),
                growth_per_week=p.get("growth_per_week", 0.0),
                seasonal=p.get("seasonal", 0.0),
                contexts=p.get("contexts", {}),
                sample_type=p.get("sample_type", "seizure"),
                bursts=tuple((b["day"], b["count"]) for b in p.get("bursts", [])),
            )
            for p in expanded
        )
        within = raw.get("warning_within")
        streams.append(
            Stream(
                id=raw["id"],
                substance=raw["substance"],
                phases=phases,
                emerging=raw.get("emerging", False),
                warning_within=(within["after"], within["days"]) if within else None,
                must_stay_below=raw.get("must_stay_below"),
            )
        )
    return Scenario(
        name=data["name"],
        basis=data["basis"],
        start=date.fromisoformat(data["start"]),
        days=data["days"],
        seed=data.get("seed", 1),
        streams=tuple(streams),
        max_false_warnings=data.get("max_false_warnings"),
    )


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal approximation for large ones."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def generate(scenario: Scenario, *, scale: float = 1.0) -> dict[int, list[tuple[Stream, Phase]]]:
    """Day -> the detections (as their stream and phase) reported that day. Deterministic."""
    rng = random.Random(scenario.seed)
    by_day: dict[int, list[tuple[Stream, Phase]]] = defaultdict(list)
    for stream in scenario.streams:
        for phase in stream.phases:
            bursts = dict(phase.bursts)
            for day in range(phase.from_day, min(phase.to_day, scenario.days)):
                weeks = (day - phase.from_day) / 7
                season = 1 + phase.seasonal * math.sin(2 * math.pi * day / 365)
                mean = phase.per_week / 7 * (1 + phase.growth_per_week) ** weeks * season * scale
                count = _poisson(rng, mean) + bursts.get(day, 0)
                by_day[day].extend([(stream, phase)] * count)
    return by_day


@dataclass
class StreamResult:
    scenario: str
    stream: str
    emerging: bool
    first_detection: date | None = None
    third_detection: date | None = None
    detections: int = 0
    first_level: dict[str, date] = field(default_factory=dict)
    verdict: str = "ok"

    def offset(self, level: str) -> str:
        reached = self.first_level.get(level)
        if reached is None or self.first_detection is None:
            return "-"
        return f"+{(reached - self.first_detection).days}d"


@dataclass
class ScenarioResult:
    scenario: Scenario
    streams: list[StreamResult]
    false_warnings: int
    passed: bool
    problems: list[str]


def _context(rng: random.Random, phase: Phase) -> str | None:
    roll, cumulative = rng.random(), 0.0
    for context, probability in phase.contexts.items():
        cumulative += probability
        if roll < cumulative:
            return context
    return None


def run_scenario(
    scenario: Scenario,
    *,
    library: Library | None = None,
    scale: float = 1.0,
    workdir: Path | None = None,
) -> ScenarioResult:
    """Replay one scenario on a fresh database; return what fired when."""
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        settings = Settings(database_url=f"sqlite:///{Path(folder) / 'backtest.db'}")
        engine = make_engine(settings.database_url)
        event.listen(engine, "connect", _throwaway)
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            load_library_into(session, library or load_library())
        try:
            return _replay(scenario, sessions, settings, scale)
        finally:
            engine.dispose()


def _throwaway(dbapi_connection: Any, _record: Any) -> None:
    """The backtest database is deleted when the run ends: skip the fsync that app.db's FULL
    synchronous mode does on every commit (a run commits thousands of times)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def _replay(
    scenario: Scenario, sessions: sessionmaker[Session], settings: Settings, scale: float
) -> ScenarioResult:
    rng = random.Random(scenario.seed + 1)
    enricher = Enricher()
    context = JobContext(sessions, settings)
    labs: dict[str, Principal] = {}
    with sessions.begin() as session:
        for country in sorted({p.country for s in scenario.streams for p in s.phases}):
            lab = Organisation(
                name=f"Forensic lab {country}", kind=OrganisationKind.LAB, country=country
            )
            session.add(lab)
            session.flush()
            labs[country] = Principal(f"lab-{country}", "api_key", ApiRole.LAB, lab.id)
    plan = generate(scenario, scale=scale)
    counts: dict[str, list[date]] = defaultdict(list)
    subject_of: dict[str, str] = {}
    for day_index in range(scenario.days):
        day = scenario.start + timedelta(days=day_index)
        by_lab: dict[str, list[tuple[Stream, dict[str, Any]]]] = defaultdict(list)
        for stream, phase in plan.get(day_index, []):
            record = {
                "substance": stream.substance,
                "detected_on": day.isoformat(),
                "country": phase.country,
                "sample_type": phase.sample_type,
            }
            detection_context = _context(rng, phase)
            if detection_context:
                record["context"] = detection_context
            by_lab[phase.country].append((stream, record))
            counts[stream.id].append(day)
        for country, items in by_lab.items():
            with sessions.begin() as session:
                outcomes = service.create_many(
                    session, labs[country], [record for _, record in items], enricher
                )
                for (stream, _), outcome in zip(items, outcomes, strict=True):
                    if outcome.errors:
                        raise ValueError(f"{scenario.name}/{stream.id}: {outcome.errors}")
                    if stream.id not in subject_of and outcome.detection is not None:
                        subject_of[stream.id] = _subject_key(session, outcome.detection)
        score_threats(context, as_of=day)
    return _report(scenario, sessions, counts, subject_of)


def _subject_key(session: Session, detection: Detection) -> str:
    if detection.substance_id is not None:
        from app.models import Substance

        substance = session.get(Substance, detection.substance_id)
        assert substance is not None
        return substance_key(substance.inchikey)
    assert detection.cluster_id is not None, "a stream's structure must be identifiable"
    return cluster_key(detection.cluster_id)


def _report(
    scenario: Scenario,
    sessions: sessionmaker[Session],
    counts: dict[str, list[date]],
    subject_of: dict[str, str],
) -> ScenarioResult:
    first_level: dict[str, dict[str, date]] = defaultdict(dict)
    with sessions.begin() as session:
        alerts = {a.id: a.subject_key for a in session.scalars(select(Alert))}
        events = session.scalars(
            select(AlertEvent)
            .where(AlertEvent.action.in_(["open", "escalate_level"]))
            .order_by(AlertEvent.id)
        )
        for event in events:
            if event.level is None:
                continue
            reached = event.created_at.date()
            subject = alerts[event.alert_id]
            for level in AlertLevel:
                if level <= event.level:
                    first_level[subject].setdefault(level.value, reached)
    emerging_subjects = {
        subject_of[s.id] for s in scenario.streams if s.emerging and s.id in subject_of
    }
    false_warnings = sum(
        1
        for subject, levels in first_level.items()
        if subject not in emerging_subjects and "warning" in levels
    )
    problems: list[str] = []
    results = []
    for stream in scenario.streams:
        days = sorted(counts.get(stream.id, []))
        result = StreamResult(
            scenario.name,
            stream.id,
            stream.emerging,
            first_detection=days[0] if days else None,
            third_detection=days[2] if len(days) >= 3 else None,
            detections=len(days),
            first_level=first_level.get(subject_of.get(stream.id, ""), {}),
        )
        if stream.warning_within is not None:
            after, limit = stream.warning_within
            anchor = result.first_detection if after == "first" else result.third_detection
            warned = result.first_level.get("warning")
            if anchor is None or warned is None or (warned - anchor).days > limit:
                result.verdict = f"FAIL: no warning within {limit}d of {after} detection"
                problems.append(f"{stream.id}: {result.verdict}")
        if stream.must_stay_below is not None and stream.must_stay_below in result.first_level:
            result.verdict = f"FAIL: reached {stream.must_stay_below}"
            problems.append(f"{stream.id}: {result.verdict}")
        results.append(result)
    if not _false_warnings_ok(scenario, false_warnings):
        problems.append(
            f"{false_warnings} false warning-or-higher alerts "
            f"(at most {scenario.max_false_warnings})"
        )
    return ScenarioResult(scenario, results, false_warnings, not problems, problems)


def _false_warnings_ok(scenario: Scenario, false_warnings: int) -> bool:
    return scenario.max_false_warnings is None or false_warnings <= scenario.max_false_warnings


def format_table(results: list[ScenarioResult]) -> str:
    """A Markdown table: one row per stream."""
    lines = [
        "| scenario | stream | detections | first | 3rd | advisory | warning | critical "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario_result in results:
        for r in scenario_result.streams:
            third = (
                f"+{(r.third_detection - r.first_detection).days}d"
                if r.third_detection and r.first_detection
                else "-"
            )
            lines.append(
                f"| {r.scenario} | {r.stream}{' (emerging)' if r.emerging else ''} | "
                f"{r.detections} | {r.first_detection or '-'} | {third} | "
                f"{r.offset('advisory')} | {r.offset('warning')} | {r.offset('critical')} | "
                f"{r.verdict} |"
            )
        scenario, count = scenario_result.scenario, scenario_result.false_warnings
        if scenario.max_false_warnings is not None:
            # Judged on the count alone: a stream's own failure is on the stream's row.
            verdict = "ok" if _false_warnings_ok(scenario, count) else "FAIL"
            lines.append(
                f"| {scenario.name} | (false warning-or-higher alerts) "
                f"| | | | | {count} | | {verdict} |"
            )
    return "\n".join(lines)
