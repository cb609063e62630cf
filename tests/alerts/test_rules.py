"""Alert rules: levels, open / escalate / keep / resolve, hysteresis and the publish policy."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from alerts.levels import AlertLevel
from alerts.rules import AlertState, Decision, Policy, decide, level_for

DAY = date(2026, 3, 22)
POLICY = Policy()  # info 20, advisory 30, warning 40, critical 60; hysteresis 5; 28 quiet days


def test_default_policy() -> None:
    assert dict(POLICY.thresholds) == {
        AlertLevel.INFO: 20.0,
        AlertLevel.ADVISORY: 30.0,
        AlertLevel.WARNING: 40.0,
        AlertLevel.CRITICAL: 60.0,
    }
    assert (POLICY.hysteresis, POLICY.quiet_days) == (5.0, 28)
    assert POLICY.min_level is AlertLevel.ADVISORY
    assert POLICY.publish_immediately == frozenset({AlertLevel.CRITICAL})
    assert POLICY.hold_line == 25.0  # advisory 30 minus 5


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, None),
        (19.9, None),
        (20.0, AlertLevel.INFO),
        (29.9, AlertLevel.INFO),
        (30.0, AlertLevel.ADVISORY),
        (40.0, AlertLevel.WARNING),
        (59.9, AlertLevel.WARNING),
        (60.0, AlertLevel.CRITICAL),
        (100.0, AlertLevel.CRITICAL),
    ],
)
def test_level_for_takes_the_highest_threshold_reached(
    score: float, expected: AlertLevel | None
) -> None:
    assert level_for(score, POLICY) is expected


def test_an_info_score_opens_no_alert() -> None:
    decision = decide(25.0, None, DAY)
    assert (decision.action, decision.level, decision.publish_now) == ("none", None, False)
    assert "info" in decision.reason
    assert "advisory 30" in decision.reason


def test_reaching_advisory_opens_an_alert_that_waits_for_an_officer() -> None:
    decision = decide(35.0, None, DAY)
    assert decision == Decision("open", AlertLevel.ADVISORY, False, True, decision.reason)
    assert "35.0" in decision.reason
    assert "advisory (30)" in decision.reason


def test_a_critical_alert_is_sent_at_once_and_still_reviewed() -> None:
    decision = decide(65.0, None, DAY)
    assert (decision.action, decision.level) == ("open", AlertLevel.CRITICAL)
    assert decision.publish_now
    assert decision.needs_review


@pytest.mark.parametrize(
    ("open_level", "score", "new_level", "publish_now"),
    [
        (AlertLevel.ADVISORY, 45.0, AlertLevel.WARNING, False),
        (AlertLevel.ADVISORY, 61.0, AlertLevel.CRITICAL, True),
        (AlertLevel.WARNING, 60.0, AlertLevel.CRITICAL, True),
    ],
)
def test_a_higher_level_escalates_the_open_alert(
    open_level: AlertLevel, score: float, new_level: AlertLevel, publish_now: bool
) -> None:
    decision = decide(score, AlertState(open_level, DAY - timedelta(days=1)), DAY)
    assert (decision.action, decision.level) == ("escalate", new_level)
    assert decision.publish_now is publish_now
    assert decision.needs_review
    assert f"above the open {open_level.value}" in decision.reason


def test_the_same_level_keeps_the_alert() -> None:
    decision = decide(45.0, AlertState(AlertLevel.WARNING, DAY), DAY)
    assert decision == Decision("keep", AlertLevel.WARNING, False, False, decision.reason)
    assert "holds warning" in decision.reason


def test_a_falling_score_never_lowers_the_level() -> None:
    decision = decide(32.0, AlertState(AlertLevel.CRITICAL, DAY), DAY)
    assert (decision.action, decision.level) == ("keep", AlertLevel.CRITICAL)
    assert "not lowered automatically" in decision.reason


def test_below_the_hold_line_the_alert_waits_quiet_days_then_resolves() -> None:
    state = AlertState(AlertLevel.WARNING, last_above_on=DAY)
    # Hold line 30 - 5 = 25: 24.9 is below it. 27 days after the last day above: keep.
    waiting = decide(24.9, state, DAY + timedelta(days=27))
    assert (waiting.action, waiting.level) == ("keep", AlertLevel.WARNING)
    assert "27 of 28 days" in waiting.reason
    resolved = decide(24.9, state, DAY + timedelta(days=28))
    assert resolved == Decision("resolve", None, False, False, resolved.reason)
    assert "28 days since 2026-03-22" in resolved.reason


def test_within_hysteresis_an_open_alert_is_kept_however_long() -> None:
    state = AlertState(AlertLevel.ADVISORY, last_above_on=DAY)
    decision = decide(25.0, state, DAY + timedelta(days=400))  # at the hold line: still held
    assert (decision.action, decision.level) == ("keep", AlertLevel.ADVISORY)


def run(scores: list[float], policy: Policy = POLICY) -> list[str]:
    """Apply decide day after day as the app does: open/escalate set the state, a day at or
    above the hold line moves last_above_on, resolve clears the state."""
    state: AlertState | None = None
    actions = []
    for offset, score in enumerate(scores):
        today = DAY + timedelta(days=offset)
        decision = decide(score, state, today, policy)
        actions.append(decision.action)
        if decision.action in ("open", "escalate") and decision.level is not None:
            state = AlertState(decision.level, today)
        elif decision.action == "resolve":
            state = None
        elif state is not None and score >= policy.hold_line:
            state = replace(state, last_above_on=today)
    return actions


def test_a_score_wobbling_around_the_threshold_does_not_flap() -> None:
    wobble = [31.0, 28.0, 32.0, 24.0, 29.0, 31.0, 22.0, 30.5, 26.0, 33.0] * 6  # 60 days
    actions = run(wobble)
    assert actions[0] == "open"
    assert actions[1:] == ["keep"] * 59  # dips below 25 last a day, never 28 days


def test_a_score_wobbling_around_the_hold_line_does_not_flap_either() -> None:
    actions = run([35.0] + [24.0, 26.0] * 40)
    assert actions.count("open") == 1
    assert "resolve" not in actions


def test_a_quiet_subject_resolves_once_and_can_reopen_later() -> None:
    # Open on day 0, above the hold line until day 4, then 28 quiet days: resolved on day 32.
    scores = [35.0] * 5 + [10.0] * 28 + [10.0] * 5 + [36.0]
    actions = run(scores)
    assert actions[0] == "open"
    assert actions.index("resolve") == 4 + 28
    assert actions.count("resolve") == 1
    assert actions[33:38] == ["none"] * 5
    assert actions[-1] == "open"


def test_escalation_is_one_way_and_happens_once_per_level() -> None:
    actions = run([35.0, 45.0, 38.0, 46.0, 62.0, 41.0, 65.0])
    assert actions == ["open", "escalate", "keep", "keep", "escalate", "keep", "keep"]


def test_policy_can_publish_more_levels_and_open_at_info() -> None:
    eager = Policy(
        publish_immediately=frozenset({AlertLevel.WARNING, AlertLevel.CRITICAL}),
        min_level=AlertLevel.INFO,
    )
    assert decide(45.0, None, DAY, eager).publish_now
    opened = decide(21.0, None, DAY, eager)
    assert (opened.action, opened.level, opened.publish_now) == ("open", AlertLevel.INFO, False)
    assert eager.hold_line == 15.0


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="increase"):
        Policy(thresholds={**POLICY.thresholds, AlertLevel.WARNING: 25.0})
    with pytest.raises(ValueError, match="missing"):
        Policy(thresholds={AlertLevel.INFO: 10.0})
    with pytest.raises(ValueError, match="hysteresis"):
        Policy(hysteresis=-1.0)
    with pytest.raises(ValueError, match="action"):
        Decision("close", None, False, False, "")
