"""Threat scores: six explained components (harm to potency analogy) combined into 0-100."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

from alerts.aberration import (
    Aberration,
    cusum,
    ears_c2,
    ears_c3,
    farrington_flexible,
    poisson_trend,
)

COMPONENTS = ("harm", "prevalence", "persistence", "growth", "novelty", "potency_analogy")
SUBJECT_TYPES = ("substance", "cluster")


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a threat score. weight is the share of the 0-100 scale this component holds
    (the Weights, normalised to sum to 100), so points = value * weight."""

    name: str
    value: float  # 0..1
    weight: float  # >= 0, points at value 1
    reason: str

    @property
    def points(self) -> float:
        return self.value * self.weight


@dataclass(frozen=True, slots=True)
class ThreatScore:
    components: tuple[Component, ...]
    aberrations: tuple[Aberration, ...] = ()  # the detectors behind the growth component

    @property
    def score(self) -> float:
        """0..100, one decimal: 100 * sum(value * weight) / sum(weight), i.e. the sum of points."""
        return round(min(100.0, max(0.0, sum(c.points for c in self.components))), 1)

    def as_dicts(self) -> list[dict[str, object]]:
        return [
            {
                "name": c.name,
                "value": round(c.value, 3),
                "weight": round(c.weight, 3),
                "reason": c.reason,
            }
            for c in self.components
        ]


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything scoring needs about one subject as of one day (see the app's aggregation).

    daily_counts and weekly_counts are oldest first, the last element being as_of's day / ISO
    week; zeros mean "collecting, nothing detected". The detectors need 12 days (EARS C3),
    42 days (CUSUM), 26 complete weeks (trend) and 160 weeks (Farrington: 3 years + 4 weeks).
    data_start, when given, is the first day the network (or a backtest) collected detections:
    the series are cut there, because days before it are unknown rather than zero (otherwise
    every substance looks new against the empty years before the system started), and
    subjects first seen in the weeks after it get no novelty (see novelty_warmup_days).
    """

    subject_type: str  # "substance" or "cluster"
    as_of: date
    potency_tier: str  # PotencyTier value; a cluster's is the highest among its nearest references
    category: str | None  # Category value of a substance; None for clusters
    controlled: bool  # the substance is internationally controlled (a cluster never is)
    detections_90d: int
    countries_90d: int
    labs_90d: int
    deaths_90d: int  # detections in the last 90 days with context "death"
    intoxications_90d: int  # ... with context "intoxication" or "driving"
    quarters_2y: int  # distinct calendar quarters with detections in the last 2 years (0..8)
    daily_counts: tuple[int, ...]  # detections per day, last = as_of (120 days)
    weekly_counts: tuple[int, ...]  # per ISO week, last = as_of's week (3 years + a few weeks)
    total_detections: int
    first_detected_on: date
    new_countries_28d: int  # countries whose first detection of the subject is in 28 days
    potent_similarity: float  # max Tanimoto to an extreme/very_high reference; 1.0 if one itself
    data_start: date | None = None
    # Not controlled itself but an analogue of a controlled substance (Tanimoto >= 0.5, the
    # chemistry's analogue threshold): a cluster's controlled_analogue, or an uncontrolled NPS
    # whose nearest controlled reference is that close.
    controlled_analogue: bool = False

    def __post_init__(self) -> None:
        if self.subject_type not in SUBJECT_TYPES:
            raise ValueError(f"subject_type must be one of {SUBJECT_TYPES}")
        if not 0.0 <= self.potent_similarity <= 1.0:
            raise ValueError("potent_similarity must be in 0..1")
        counts = (
            self.detections_90d, self.countries_90d, self.labs_90d, self.deaths_90d,
            self.intoxications_90d, self.quarters_2y, self.total_detections,
            self.new_countries_28d,
        )  # fmt: skip
        if min(counts) < 0:
            raise ValueError("counts must be non-negative")
        if self.controlled and self.controlled_analogue:
            raise ValueError("a controlled substance is not a controlled analogue")

    @property
    def daily_series(self) -> tuple[int, ...]:
        """daily_counts from data_start on."""
        if self.data_start is None:
            return self.daily_counts
        known = (self.as_of - self.data_start).days + 1
        return self.daily_counts[-known:] if known > 0 else ()

    @property
    def weekly_series(self) -> tuple[int, ...]:
        """weekly_counts from data_start's ISO week on."""
        if self.data_start is None:
            return self.weekly_counts
        # (toordinal() - 1) // 7 steps on Mondays (ordinal 1, 0001-01-01, is a Monday).
        known = (self.as_of.toordinal() - 1) // 7 - (self.data_start.toordinal() - 1) // 7 + 1
        return self.weekly_counts[-known:] if known > 0 else ()


@dataclass(frozen=True, slots=True)
class Weights:
    """Relative weights (normalised to sum to 100 when scoring; the defaults already do).

    Emergence (novelty, growth) and danger (harm, potency analogy) carry most of the scale;
    prevalence and persistence, which make a substance a priority for the long term (UNODC's
    "most harmful, persistent and prevalent"), carry less, so that an established common
    substance stays below warning while a new potent one reaches it on its first detection,
    and a new analogue of controlled drugs once it has been detected on three separate days.
    """

    harm: float = 20.0
    prevalence: float = 10.0
    persistence: float = 10.0
    growth: float = 20.0
    novelty: float = 25.0
    potency_analogy: float = 15.0

    def __post_init__(self) -> None:
        values = [getattr(self, name) for name in COMPONENTS]
        if min(values) < 0 or sum(values) <= 0:
            raise ValueError("weights must be non-negative with a positive sum")

    def normalised(self) -> dict[str, float]:
        total = sum(getattr(self, name) for name in COMPONENTS)
        return {name: 100.0 * getattr(self, name) / total for name in COMPONENTS}


# Harm of a potency tier (chemistry.vocabulary.PotencyTier: typical dose extreme < 0.01 mg ...
# low >= 10 mg). unknown sits between low and moderate: most NPS have no established dose, and
# an unknown new substance should not score as harmless.
TIER_HARM = MappingProxyType(
    {"extreme": 1.0, "very_high": 0.85, "high": 0.6, "moderate": 0.35, "low": 0.15, "unknown": 0.3}
)
# How new a first detection can be, by Category: an NPS or an unnamed cluster is new; a diverted
# medicine or a classic controlled drug first seen by the network is a change in the market, not
# a new substance; a cutting agent is never a threat of its own.
CATEGORY_NOVELTY = MappingProxyType(
    {"nps": 1.0, "psychoactive_medicine": 0.5, "controlled": 0.25, "cutting_agent": 0.0}
)


# How much an alarm of each detector counts as evidence of growth (growth = 1 - product of
# (1 - reliability * strength)). Set from false-alarm rates measured with the default
# parameters on stationary Poisson series (daily means 0.2-8): EARS C2 about 3% and C3 about
# 10% of days (C3 is the most sensitive, least specific EARS method), CUSUM 3-8% of days,
# Farrington 2-6% of weeks at alpha 0.05, the trend test under 0.5% of weeks.
RELIABILITY = MappingProxyType(
    {
        "EARS C2": 0.3,
        "EARS C3": 0.2,
        "CUSUM": 0.4,
        "Farrington flexible": 0.6,
        "Poisson trend": 0.8,
    }
)


@dataclass(frozen=True, slots=True)
class ScoringParams:
    """Saturation points and thresholds inside the components (value 1 is reached at `*_full`)."""

    tier_harm: Mapping[str, float] = field(default_factory=lambda: TIER_HARM)
    harm_share_full: float = 0.5  # share of detections in death/intoxication contexts
    death_weight: float = 2.0  # a death counts as this many intoxications
    countries_full: int = 10
    labs_full: int = 10
    detections_full: int = 100  # on a log scale: log(1 + n) / log(1 + 100)
    quarters_full: int = 8  # all quarters of the last two years
    exceedance_full: float = 2.0  # statistic / threshold at which a detector counts fully
    detector_reliability: Mapping[str, float] = field(default_factory=lambda: RELIABILITY)
    trend_days_full: int = 3  # days with detections in the last 28 for growth to count fully
    novelty_days: int = 365  # a first detection stops being new after this many days
    # A subject first detected within this many days of Facts.data_start was probably on the
    # market before collection began: its novelty counts in proportion (0 on the first day).
    novelty_warmup_days: int = 28
    new_countries_full: int = 3  # countries reached for the first time in the last 28 days
    # novelty = 1 - (1 - newness * occasions) * (1 - share * spread): a new subject, or one
    # reaching new countries (which counts at most `share`), is news.
    novelty_spread_share: float = 0.5
    category_novelty: Mapping[str, float] = field(default_factory=lambda: CATEGORY_NOVELTY)
    # Separate days with detections (in the daily series). A new subject seen on one day only
    # may be one event, one seizure analysed as many samples, or a one-off: its newness and its
    # control analogy count single_occasion. Seen again on other days it is on the market, and
    # they count fully at occasions_full days (issue 6 expects an emerging substance to be a
    # warning within days of its third detection). Potency analogy is not discounted: one
    # batch of a nitazene analogue can kill.
    single_occasion: float = 0.6
    occasions_full: int = 3
    # Tanimoto (Morgan r2) to an extreme/very high potency reference. 0.4 is where ECFP4
    # similarity starts to suggest shared activity; 0.7 is a close analogue (the chemistry
    # package flags analogues and joins clusters at 0.5).
    similarity_start: float = 0.4
    similarity_full: float = 0.7
    # Analogy value of a new, uncontrolled analogue of a controlled substance (Facts.
    # controlled_analogue): the designer-drug pattern early warning exists for, a structure made
    # to stand in for a controlled drug while outside the 1961/1971 Conventions (UNODC's NPS
    # definition); 558 of the library's 683 uncontrolled NPS have such a controlled neighbour.
    # Below potency analogy (1), since controlled drugs span every potency.
    controlled_analogy: float = 0.6


def score(
    facts: Facts, weights: Weights = Weights(), params: ScoringParams = ScoringParams()
) -> ThreatScore:
    """Score one subject: each component is a value 0..1 with a one-line reason; the score is
    the weighted mean on 0..100 (weights normalised to sum to 100), so the points add up to it.
    Deterministic: the same Facts, Weights and ScoringParams give the same ThreatScore."""
    share = weights.normalised()
    growth, aberrations = _growth(facts, params)
    values = {
        "harm": _harm(facts, params),
        "prevalence": _prevalence(facts, params),
        "persistence": _persistence(facts, params),
        "growth": growth,
        "novelty": _novelty(facts, params),
        "potency_analogy": _potency_analogy(facts, params),
    }
    components = tuple(
        Component(name, _clip(values[name][0]), share[name], values[name][1]) for name in COMPONENTS
    )
    return ThreatScore(components, aberrations)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _harm(f: Facts, p: ScoringParams) -> tuple[float, str]:
    """1 - (1 - tier) (1 - context): either a potent substance or harmful use raises harm.
    context = (death_weight * deaths + intoxications) / detections / harm_share_full, at most 1:
    a share, not a count, so that a common substance is not harmful by volume alone."""
    if f.category == "cutting_agent":
        return 0.0, "cutting agent: not of concern in itself"
    tier = p.tier_harm.get(f.potency_tier, p.tier_harm.get("unknown", 0.0))
    events = p.death_weight * f.deaths_90d + f.intoxications_90d
    context = _clip(events / f.detections_90d / p.harm_share_full) if f.detections_90d else 0.0
    value = 1.0 - (1.0 - tier) * (1.0 - context)
    control = "; controlled" if f.controlled else ""
    return value, (
        f"potency tier {f.potency_tier} ({tier:.2f}){control}; "
        f"{_plural(f.deaths_90d, 'death')} and {_plural(f.intoxications_90d, 'intoxication')} "
        f"among {_plural(f.detections_90d, 'detection')} in 90 days ({context:.2f})"
    )


def _prevalence(f: Facts, p: ScoringParams) -> tuple[float, str]:
    """Mean of countries, labs (linear) and detections (log) in 90 days, each saturating."""
    countries = _clip(f.countries_90d / p.countries_full)
    labs = _clip(f.labs_90d / p.labs_full)
    detections = _clip(math.log1p(f.detections_90d) / math.log1p(p.detections_full))
    value = (countries + labs + detections) / 3.0
    return value, (
        f"{_plural(f.detections_90d, 'detection')} from {_plural(f.labs_90d, 'lab')} in "
        f"{f.countries_90d} {'country' if f.countries_90d == 1 else 'countries'} in 90 days "
        f"(full at {p.detections_full}, {p.labs_full}, {p.countries_full})"
    )


def _persistence(f: Facts, p: ScoringParams) -> tuple[float, str]:
    value = f.quarters_2y / p.quarters_full
    return value, f"detections in {f.quarters_2y} of the last 8 calendar quarters"


def _strength(aberration: Aberration, p: ScoringParams) -> float:
    """0 without alarm; at an alarm 0.5 at the threshold rising linearly to 1 at
    exceedance_full times it (a zero threshold, Farrington's over an empty reference, gives 1)."""
    if not aberration.alarm:
        return 0.0
    if aberration.threshold <= 0:
        return 1.0
    ratio = aberration.statistic / aberration.threshold
    return min(1.0, 0.5 + 0.5 * (ratio - 1.0) / (p.exceedance_full - 1.0))


def _growth(f: Facts, p: ScoringParams) -> tuple[tuple[float, str], tuple[Aberration, ...]]:
    """Evidence of growth from five detectors (EARS C2, C3 and CUSUM on daily counts;
    Farrington flexible and the Poisson trend on weekly counts), combined as
    1 - product(1 - reliability * strength) over those with enough history, so agreeing
    detectors add up and a lone noisy one counts little. Times a days factor,
    (active days in the last 28 - 1) / (trend_days_full - 1) at most 1: detections on a single
    day are one event (one seizure), not a trend."""
    daily, weekly = f.daily_series, f.weekly_series
    # The trend is fitted to complete weeks: a partial current week would bend it down.
    complete = weekly if f.as_of.weekday() == 6 else weekly[:-1]
    aberrations: tuple[Aberration, ...] = (ears_c2(daily), ears_c3(daily), cusum(daily))
    aberrations += (farrington_flexible(weekly), poisson_trend(complete))
    tested = [a for a in aberrations if a.enough_history]
    doubt = 1.0
    for a in tested:
        doubt *= 1.0 - p.detector_reliability.get(a.method, 0.0) * _strength(a, p)
    raw = 1.0 - doubt
    active = sum(1 for count in daily[-28:] if count > 0)
    days = _clip((active - 1) / (p.trend_days_full - 1)) if p.trend_days_full > 1 else 1.0
    alarmed = [a for a in tested if a.alarm]
    if alarmed:
        named = ", ".join(f"{a.method} ({a.statistic:.3g} > {a.threshold:.3g})" for a in alarmed)
        head = f"{named} alarmed; {len(alarmed)} of {len(tested)} detectors"
    else:
        head = f"no alarm from {len(tested)} detectors"
    untested = len(aberrations) - len(tested)
    if untested:
        head += f" ({untested} lacked history)"
    reason = f"{head}; detections on {active} of the last 28 days"
    if days < 1.0 and raw > 0:
        reason += f" (counts {days:.2f}: a trend needs {p.trend_days_full})"
    return (raw * days, reason), aberrations


def _warmup(f: Facts, p: ScoringParams) -> tuple[float, str]:
    """Discount for subjects first seen within novelty_warmup_days of data_start: they were
    probably on the market before collection began (0 on the first day, 1 after the warm-up)."""
    if f.data_start is None or p.novelty_warmup_days <= 0:
        return 1.0, ""
    lead = (f.first_detected_on - f.data_start).days
    factor = _clip(lead / p.novelty_warmup_days)
    if factor >= 1.0:
        return 1.0, ""
    return factor, f"first seen {_plural(lead, 'day')} after data collection began ({factor:.2f})"


def _newness(f: Facts, p: ScoringParams) -> float:
    """1 on the first detection, falling linearly to 0 after novelty_days."""
    return _clip(1.0 - (f.as_of - f.first_detected_on).days / p.novelty_days)


def _occasions(f: Facts, p: ScoringParams) -> tuple[float, int]:
    """single_occasion on one day with detections, rising linearly to 1 at occasions_full
    separate days (counted over the daily series); and the number of days."""
    days = sum(1 for count in f.daily_series if count > 0)
    if p.occasions_full <= 1:
        return 1.0, days
    more = _clip((days - 1) / (p.occasions_full - 1))
    return p.single_occasion + (1.0 - p.single_occasion) * more, days


def _novelty(f: Facts, p: ScoringParams) -> tuple[float, str]:
    """category factor * warm-up * (1 - (1 - newness * occasions) * (1 - s * spread)), spread =
    new countries in 28 days / new_countries_full: a new substance seen on separate days, and
    one reaching new countries, is news. With the defaults a first detection in one country
    scores 1 - (1 - 0.6) * (1 - 1/6) = 2/3, a new subject seen on three days 1 wherever."""
    age = (f.as_of - f.first_detected_on).days
    spread = _clip(f.new_countries_28d / p.new_countries_full)
    s = p.novelty_spread_share
    warmup, note = _warmup(f, p)
    occasions, days = _occasions(f, p)
    if f.subject_type == "cluster":
        factor, notes = 1.0, ["new cluster"]
    else:
        factor = p.category_novelty.get(f.category or "nps", 1.0)
        notes = [] if factor == 1.0 else [f"{f.category} (counts {factor:.2f})"]
    notes += [note] if note else []
    newness = _newness(f, p)
    value = factor * warmup * (1.0 - (1.0 - newness * occasions) * (1.0 - s * spread))
    n = f.new_countries_28d
    countries = "1 new country" if n == 1 else f"{n} new countries"
    ago = "today" if age == 0 else f"{_plural(age, 'day')} ago"
    when = (
        f"first detected {ago} ({f.first_detected_on.isoformat()}), "
        f"{_plural(f.total_detections, 'detection')} in all (new for {p.novelty_days})"
    )
    seen = (
        f"detections on {_plural(days, 'separate day')} "
        f"({occasions:.2f}, full at {p.occasions_full})"
    )
    return value, "; ".join([*notes, when, seen, f"{countries} in 28 days"])


def _potency_analogy(f: Facts, p: ScoringParams) -> tuple[float, str]:
    """For subjects that are new: newness (and warm-up) times the larger of the potency part,
    similarity to extreme/very high potency references (0 at similarity_start, 1 at
    similarity_full), and the control part, controlled_analogy * occasions for an uncontrolled
    analogue of a controlled substance. A known potent substance keeps its potency in harm;
    this is the early signal a new analogue needs before anything else is known about it."""
    sim = f.potent_similarity
    potent = _clip((sim - p.similarity_start) / (p.similarity_full - p.similarity_start))
    occasions, days = _occasions(f, p)
    control = p.controlled_analogy * occasions if f.controlled_analogue else 0.0
    warmup, note = _warmup(f, p)
    newness = _newness(f, p) * warmup
    if f.subject_type == "substance" and f.potency_tier in ("extreme", "very_high"):
        what = [f"itself of potency tier {f.potency_tier}"]
    else:
        what = [
            f"Tanimoto {sim:.2f} to the nearest extreme or very high potency reference "
            f"(counts from {p.similarity_start}, full at {p.similarity_full})"
        ]
    if f.controlled_analogue:
        what.append(
            f"analogue of a controlled substance ({p.controlled_analogy:g} x {occasions:.2f} "
            f"for detections on {_plural(days, 'separate day')} = {control:.2f})"
        )
    age = (f.as_of - f.first_detected_on).days
    new = f"newness {newness:.2f} (first detected {_plural(age, 'day')} ago)"
    return max(potent, control) * newness, "; ".join([*what, new] + ([note] if note else []))
