"""Threat scores for hand-built subjects: the acceptance properties of issue 6 and the rules
that keep every score explainable."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta

import pytest

from alerts.levels import AlertLevel
from alerts.rules import Policy, level_for
from alerts.scoring import (
    CATEGORY_NOVELTY,
    COMPONENTS,
    TIER_HARM,
    Facts,
    ThreatScore,
    Weights,
    score,
)
from chemistry.vocabulary import Category, PotencyTier

AS_OF = date(2026, 3, 22)  # a Sunday: the last daily count closes the last ISO week
DAYS, WEEKS = 120, 164


def daily_from_weekly(weeks: list[int]) -> tuple[int, ...]:
    """Spread each week's count over its days (at most 2 a day, days in a fixed order), so the
    daily and weekly series of a subject agree; left-padded with zeros to 120 days."""
    days: list[int] = []
    for count in weeks:
        week = [0] * 7
        for i in range(count):
            week[(3 * i + 1) % 7] += 1
        days.extend(week)
    days = days[-DAYS:]
    return (0,) * (DAYS - len(days)) + tuple(days)


def weekly(recent: list[int]) -> tuple[int, ...]:
    return (0,) * (WEEKS - len(recent)) + tuple(recent)


FIRST_DETECTION = Facts(
    subject_type="substance",
    as_of=AS_OF,
    potency_tier="extreme",
    category="nps",
    controlled=False,
    detections_90d=1,
    countries_90d=1,
    labs_90d=1,
    deaths_90d=0,
    intoxications_90d=0,
    quarters_2y=1,
    daily_counts=(0,) * (DAYS - 1) + (1,),
    weekly_counts=weekly([1]),
    total_detections=1,
    first_detected_on=AS_OF,
    new_countries_28d=1,
    potent_similarity=1.0,
)
# Common, long established: 5-10 a week for two years across 12 countries, controlled.
COMMON_WEEKS = [7, 8, 6, 9, 5, 10, 7] * 15  # 105 weeks
COMMON = replace(
    FIRST_DETECTION,
    potency_tier="moderate",
    category="controlled",
    controlled=True,
    detections_90d=sum(COMMON_WEEKS[-13:]),
    countries_90d=12,
    labs_90d=15,
    intoxications_90d=2,
    quarters_2y=8,
    daily_counts=daily_from_weekly(COMMON_WEEKS),
    weekly_counts=weekly(COMMON_WEEKS),
    total_detections=sum(COMMON_WEEKS),
    first_detected_on=AS_OF - timedelta(weeks=105),
    new_countries_28d=0,
    potent_similarity=0.1,
)
# One seizure: 20 samples on one day from one lab, moderate tier, nothing before.
BURST = replace(
    FIRST_DETECTION,
    potency_tier="moderate",
    detections_90d=20,
    daily_counts=(0,) * (DAYS - 1) + (20,),
    weekly_counts=weekly([20]),
    total_detections=20,
    potent_similarity=0.3,
)
# A cathinone growing slowly for seven months: 1 a week rising to 6, reaching 4 countries.
CATHINONE_WEEKS = [round(6 * i / 34) for i in range(3, 35)]  # 1, 1, 1, 2, ... 6: 32 weeks
CATHINONE = replace(
    FIRST_DETECTION,
    potency_tier="unknown",
    detections_90d=sum(CATHINONE_WEEKS[-13:]),
    countries_90d=4,
    labs_90d=6,
    intoxications_90d=3,
    quarters_2y=3,
    daily_counts=daily_from_weekly(CATHINONE_WEEKS),
    weekly_counts=weekly(CATHINONE_WEEKS),
    total_detections=sum(CATHINONE_WEEKS),
    first_detected_on=AS_OF - timedelta(weeks=32) + timedelta(days=1),
    potent_similarity=0.25,
)
# An unnamed family of synthetic cannabinoids: no reference match, 0 to 6 a week in 8 weeks,
# three countries, a few intoxications.
CLUSTER_WEEKS = [1, 1, 2, 2, 3, 4, 5, 6]
SC_CLUSTER = replace(
    FIRST_DETECTION,
    subject_type="cluster",
    potency_tier="unknown",
    category=None,
    detections_90d=24,
    countries_90d=3,
    labs_90d=4,
    intoxications_90d=3,
    quarters_2y=1,
    daily_counts=daily_from_weekly(CLUSTER_WEEKS),
    weekly_counts=weekly(CLUSTER_WEEKS),
    total_detections=24,
    first_detected_on=AS_OF - timedelta(weeks=8) + timedelta(days=2),
    potent_similarity=0.5,
)
# A new designer cathinone: not controlled, unknown potency, an analogue of controlled ones,
# found by one lab on three days of its first week (six, three and zero days ago).
EMERGING_ANALOGUE = replace(
    FIRST_DETECTION,
    potency_tier="unknown",
    controlled_analogue=True,
    detections_90d=3,
    daily_counts=(0,) * (DAYS - 7) + (1, 0, 0, 1, 0, 0, 1),
    weekly_counts=weekly([3]),
    total_detections=3,
    first_detected_on=AS_OF - timedelta(days=6),
    potent_similarity=0.2,
)
ALL = [FIRST_DETECTION, COMMON, BURST, CATHINONE, SC_CLUSTER, EMERGING_ANALOGUE]


def level(facts: Facts) -> AlertLevel | None:
    return level_for(score(facts).score, Policy())


def points(threat: ThreatScore) -> dict[str, float]:
    return {c.name: c.points for c in threat.components}


def test_a_new_nitazene_reaches_warning_on_its_first_detection() -> None:
    threat = score(FIRST_DETECTION)
    # harm 1 * 20; prevalence (1/10 + 1/10 + ln 2 / ln 101) / 3 * 10; persistence 1/8 * 10;
    # growth 0 (one detection alarms nothing); novelty (1 - (1 - 1 * 0.6) * (1 - 1/2 * 1/3)) * 25
    # = 2/3 * 25 (new today but seen on one day only, one new country of the 3 that saturate);
    # potency analogy 1 * 15 (itself extreme, new: not discounted for a single occasion).
    prevalence = (0.1 + 0.1 + math.log(2) / math.log(101)) / 3 * 10
    expected = 20 + prevalence + 1.25 + 0 + 25 * (0.5 + 0.5 / 3) + 15
    assert threat.score == round(expected, 1) == 54.1
    assert points(threat)["growth"] == 0
    assert level(FIRST_DETECTION) is AlertLevel.WARNING


def test_a_new_cluster_close_to_a_nitazene_reaches_warning_on_its_first_detection() -> None:
    cluster = replace(
        FIRST_DETECTION,
        subject_type="cluster",
        category=None,
        potency_tier="very_high",  # the highest tier among its nearest references
        potent_similarity=0.8,
    )
    threat = score(cluster)
    # As above with harm 0.85 * 20 = 17; similarity 0.8 is past the 0.7 that counts fully.
    assert threat.score == pytest.approx(54.1 - 3, abs=0.05)
    assert level(cluster) is AlertLevel.WARNING
    assert "new cluster" in threat.components[COMPONENTS.index("novelty")].reason


def test_a_common_established_substance_stays_below_warning() -> None:
    threat = score(COMMON)
    # harm 1 - 0.65 * (1 - 2/91/0.5) = 0.377 -> 7.5; prevalence (1 + 1 + ln 92/ln 101)/3 -> 10;
    # persistence 8/8 -> 10; no growth, no novelty (controlled, two years old), no analogy.
    assert threat.score == pytest.approx(27.5, abs=0.1)
    assert points(threat)["growth"] == 0
    assert points(threat)["novelty"] == 0
    assert level(COMMON) in (None, AlertLevel.INFO, AlertLevel.ADVISORY)


def test_a_one_day_seizure_burst_does_not_reach_warning() -> None:
    threat = score(BURST)
    # Every daily detector and Farrington alarm, but detections on 1 of 28 days make growth 0:
    # harm 0.35 * 20 = 7; prevalence (0.1 + 0.1 + ln 21 / ln 101) / 3 * 10 = 2.87;
    # persistence 1.25; novelty 2/3 * 25 = 16.67 (a new NPS seen on one day, in one country);
    # analogy 0 (similarity 0.3, not an analogue of a controlled substance).
    assert threat.score == pytest.approx(7 + 2.866 + 1.25 + 16.667, abs=0.05)
    growth = threat.components[COMPONENTS.index("growth")]
    assert growth.value == 0
    assert "EARS C2" in growth.reason
    assert "a trend needs 3" in growth.reason
    assert level(BURST) is AlertLevel.INFO
    for days_later in range(1, 15):
        later = replace(
            BURST,
            as_of=AS_OF + timedelta(days=days_later),
            daily_counts=BURST.daily_counts[days_later:] + (0,) * days_later,
        )
        assert score(later).score < Policy().thresholds[AlertLevel.WARNING]


def test_a_slowly_growing_cathinone_reaches_warning() -> None:
    threat = score(CATHINONE)
    growth = threat.components[COMPONENTS.index("growth")]
    assert "Farrington flexible" in growth.reason  # nothing in the same weeks last year
    assert "Poisson trend" in growth.reason  # 1 to 6 a week over half a year
    assert growth.value > 0.7
    assert level(CATHINONE) is AlertLevel.WARNING


def test_a_new_synthetic_cannabinoid_cluster_reaches_warning() -> None:
    threat = score(SC_CLUSTER)
    growth = threat.components[COMPONENTS.index("growth")]
    assert "Farrington flexible" in growth.reason
    assert growth.value > 0.5
    assert 0 < threat.components[COMPONENTS.index("potency_analogy")].value < 0.5
    assert level(SC_CLUSTER) is AlertLevel.WARNING


def test_a_new_analogue_of_controlled_drugs_seen_on_three_days_reaches_warning() -> None:
    threat = score(EMERGING_ANALOGUE)
    newness = 1 - 6 / 365
    # harm 0.3 * 20 (unknown tier); prevalence (0.1 + 0.1 + ln 4 / ln 101) / 3 * 10;
    # persistence 1.25; growth 0 (three lone detections alarm nothing); novelty
    # (1 - (1 - newness * 1) * (1 - 1/6)) * 25: seen on 3 days, fully new in one country;
    # analogy 0.6 * 1 * newness * 15: an analogue of a controlled substance, seen on 3 days.
    prevalence = (0.2 + math.log(4) / math.log(101)) / 3 * 10
    novelty = (1 - (1 - newness) * (1 - 1 / 6)) * 25
    expected = 6 + prevalence + 1.25 + 0 + novelty + 0.6 * newness * 15
    assert threat.score == round(expected, 1) == 42.4
    assert points(threat)["growth"] == 0
    assert "detections on 3 separate days" in threat.components[COMPONENTS.index("novelty")].reason
    assert "analogue of a controlled substance" in threat.components[-1].reason
    assert level(EMERGING_ANALOGUE) is AlertLevel.WARNING


def test_the_same_analogue_on_its_first_day_is_an_advisory() -> None:
    first = replace(
        EMERGING_ANALOGUE,
        detections_90d=1,
        daily_counts=FIRST_DETECTION.daily_counts,
        weekly_counts=weekly([1]),
        total_detections=1,
        first_detected_on=AS_OF,
    )
    # 6 + (0.2 + ln 2 / ln 101) / 3 * 10 + 1.25 + 2/3 * 25 + 0.6 * 0.6 * 15: one occasion
    # counts 0.6 of the newness and of the control analogy.
    prevalence = (0.2 + math.log(2) / math.log(101)) / 3 * 10
    assert score(first).score == round(6 + prevalence + 1.25 + 25 * 2 / 3 + 5.4, 1) == 30.5
    assert level(first) is AlertLevel.ADVISORY


def test_a_controlled_substance_gets_no_analogue_credit() -> None:
    with pytest.raises(ValueError, match="controlled analogue"):
        replace(EMERGING_ANALOGUE, controlled=True)
    plain = replace(EMERGING_ANALOGUE, controlled_analogue=False)
    assert points(score(plain))["potency_analogy"] == 0
    assert score(EMERGING_ANALOGUE).score - score(plain).score == pytest.approx(
        0.6 * (1 - 6 / 365) * 15, abs=0.1
    )


def test_a_new_subject_seen_on_two_days_is_between() -> None:
    # Occasions 0.6 + 0.4 * (2 - 1) / (3 - 1) = 0.8 for novelty and control analogy.
    two = replace(EMERGING_ANALOGUE, daily_counts=(0,) * (DAYS - 7) + (1, 0, 0, 0, 0, 0, 2))
    newness = 1 - 6 / 365
    novelty = score(two).components[COMPONENTS.index("novelty")]
    assert novelty.value == pytest.approx(1 - (1 - newness * 0.8) * (1 - 1 / 6))
    analogy = score(two).components[COMPONENTS.index("potency_analogy")]
    assert analogy.value == pytest.approx(0.6 * 0.8 * newness)


def test_a_one_day_burst_of_a_potent_looking_controlled_analogue_stays_below_warning() -> None:
    # The hardest one-off: a new cluster whose nearest references are of high potency and
    # controlled, 20 samples from one seizure. harm 0.6 * 20; prevalence 2.87; persistence
    # 1.25; growth 0 (one day); novelty 2/3 * 25; analogy 0.6 * 0.6 * 15 (one occasion).
    burst = replace(
        BURST,
        subject_type="cluster",
        category=None,
        potency_tier="high",
        controlled_analogue=True,
        potent_similarity=0.2,
    )
    prevalence = (0.2 + math.log(21) / math.log(101)) / 3 * 10
    assert score(burst).score == pytest.approx(12 + prevalence + 1.25 + 25 * 2 / 3 + 5.4, abs=0.05)
    assert level(burst) is AlertLevel.ADVISORY
    for days_later in range(1, 29):
        later = replace(
            burst,
            as_of=AS_OF + timedelta(days=days_later),
            daily_counts=burst.daily_counts[days_later:] + (0,) * days_later,
        )
        assert score(later).score < Policy().thresholds[AlertLevel.WARNING]


@pytest.mark.parametrize("facts", ALL)
def test_every_reason_is_one_line_with_its_numbers(facts: Facts) -> None:
    threat = score(facts)
    assert [c.name for c in threat.components] == list(COMPONENTS)
    for component in threat.components:
        assert component.reason
        assert "\n" not in component.reason
        assert any(ch.isdigit() for ch in component.reason), component
        assert 0.0 <= component.value <= 1.0


@pytest.mark.parametrize("facts", ALL)
def test_points_add_up_to_the_score(facts: Facts) -> None:
    threat = score(facts)
    assert sum(c.weight for c in threat.components) == pytest.approx(100.0)
    assert sum(c.points for c in threat.components) == pytest.approx(threat.score, abs=0.05)


@pytest.mark.parametrize("facts", ALL)
def test_scores_are_deterministic(facts: Facts) -> None:
    assert score(facts) == score(facts)
    assert score(facts).as_dicts() == score(replace(facts)).as_dicts()


def test_as_dicts_is_the_api_shape() -> None:
    rows = score(SC_CLUSTER).as_dicts()
    assert [set(row) for row in rows] == [{"name", "value", "weight", "reason"}] * 6
    assert all(row["value"] == round(float(str(row["value"])), 3) for row in rows)


def test_weights_are_relative() -> None:
    tenth = Weights(**{name: getattr(Weights(), name) / 10 for name in COMPONENTS})
    assert score(SC_CLUSTER, tenth).score == score(SC_CLUSTER).score
    harm_only = Weights(**{name: 0.0 for name in COMPONENTS} | {"harm": 1.0})
    assert score(FIRST_DETECTION, harm_only).score == 100.0
    with pytest.raises(ValueError, match="weights"):
        Weights(harm=-1.0)


def test_a_cutting_agent_is_not_harmful_and_never_new() -> None:
    agent = replace(BURST, category="cutting_agent", potency_tier="low")
    threat = score(agent)
    assert points(threat)["harm"] == 0
    assert points(threat)["novelty"] == 0
    assert "cutting agent" in threat.components[0].reason


def test_deaths_and_intoxications_raise_harm_as_a_share() -> None:
    # unknown tier 0.3; context (2 * 1 + 2) / 10 / 0.5 = 0.8; harm 1 - 0.7 * 0.2 = 0.86.
    harmed = replace(SC_CLUSTER, detections_90d=10, deaths_90d=1, intoxications_90d=2)
    assert score(harmed).components[0].value == pytest.approx(0.86)
    assert "1 death and 2 intoxications among 10 detections" in score(harmed).components[0].reason


def test_a_subject_seen_when_collection_began_is_not_new() -> None:
    # A backtest or a new deployment: everything already on the market is first seen on day 1.
    started = replace(FIRST_DETECTION, data_start=AS_OF)
    threat = score(started)
    assert points(threat)["novelty"] == 0
    assert points(threat)["potency_analogy"] == 0
    assert "after data collection began" in threat.components[COMPONENTS.index("novelty")].reason
    settled = replace(FIRST_DETECTION, data_start=AS_OF - timedelta(days=28))
    assert score(settled).score == score(FIRST_DETECTION).score


def test_data_start_cuts_the_series_before_the_detectors_run() -> None:
    facts = replace(COMMON, data_start=AS_OF - timedelta(days=9))
    assert len(facts.daily_series) == 10
    assert len(facts.weekly_series) == 2  # Monday 16 March and the week before
    c2, c3, *others = score(facts).aberrations
    assert c2.enough_history  # C2 needs 7 + 2 + 1 = 10 days
    assert not c3.enough_history  # C3 needs 12
    assert not any(a.enough_history for a in others)


def test_tier_harm_covers_every_potency_tier() -> None:
    assert set(TIER_HARM) == {tier.value for tier in PotencyTier}
    assert TIER_HARM["extreme"] > TIER_HARM["very_high"] > TIER_HARM["high"]
    assert TIER_HARM["high"] > TIER_HARM["moderate"] > TIER_HARM["unknown"] > TIER_HARM["low"]


def test_category_novelty_covers_every_category() -> None:
    assert set(CATEGORY_NOVELTY) == {category.value for category in Category}


def test_facts_are_validated() -> None:
    with pytest.raises(ValueError, match="subject_type"):
        replace(FIRST_DETECTION, subject_type="compound")
    with pytest.raises(ValueError, match="potent_similarity"):
        replace(FIRST_DETECTION, potent_similarity=1.5)
    with pytest.raises(ValueError, match="non-negative"):
        replace(FIRST_DETECTION, deaths_90d=-1)
