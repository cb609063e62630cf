"""Alert rules: turn a subject's daily score into open, escalate, keep or resolve decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from types import MappingProxyType

from alerts.levels import AlertLevel

# Score (0-100, alerts.scoring) needed for each level. Calibrated on the backtest scenarios
# (scenarios/*.json) with the default Weights and ScoringParams: a year of common substances
# across 20 countries scores mostly 15-30 (the highest, a synthetic cannabinoid or heroin with
# growth alarms, about 36); a one-day seizure of 20 samples of a new NPS 24 (a controlled one)
# to 32 (an uncontrolled analogue of controlled ones; 38 for a cluster near high-potency
# references); the first detection of a new analogue of controlled drugs 30-37; the same seen
# on three separate days 42-47; a new extreme/very high potency substance or close analogue
# about 54 on its first detection; new substances spreading with deaths or intoxications 60-78.
# So warning (40) is above anything established or one-off, and critical (60) needs a new
# substance with potency or harm and spread.
DEFAULT_THRESHOLDS: Mapping[AlertLevel, float] = MappingProxyType(
    {
        AlertLevel.INFO: 20.0,
        AlertLevel.ADVISORY: 30.0,
        AlertLevel.WARNING: 40.0,
        AlertLevel.CRITICAL: 60.0,
    }
)
ACTIONS = ("none", "open", "escalate", "keep", "resolve")


@dataclass(frozen=True, slots=True)
class Policy:
    """When alerts open, escalate and resolve, and which levels are sent without an officer.

    min_level is advisory: an info score is recorded (ThreatScore rows) but opens no alert,
    so officers see only subjects worth a look. hysteresis (5 points, a day-to-day wobble of
    the score) keeps an open alert from resolving while the score hovers near the threshold;
    quiet_days (28, four weeks as the novelty window) is how long it must stay below.
    """

    thresholds: Mapping[AlertLevel, float] = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    hysteresis: float = 5.0
    quiet_days: int = 28
    publish_immediately: frozenset[AlertLevel] = frozenset({AlertLevel.CRITICAL})
    min_level: AlertLevel = AlertLevel.ADVISORY

    def __post_init__(self) -> None:
        missing = [level.value for level in AlertLevel if level not in self.thresholds]
        if missing:
            raise ValueError(f"thresholds missing for {', '.join(missing)}")
        ordered = [self.thresholds[level] for level in sorted(AlertLevel)]
        if any(low >= high for low, high in pairwise(ordered)):
            raise ValueError("thresholds must increase from info to critical")
        if self.hysteresis < 0 or self.quiet_days < 1:
            raise ValueError("hysteresis must be >= 0 and quiet_days >= 1")

    @property
    def hold_line(self) -> float:
        """The score an open alert must keep to count as active: min_level's threshold minus
        hysteresis. AlertState.last_above_on is the last day the score was at or above it."""
        return self.thresholds[self.min_level] - self.hysteresis


@dataclass(frozen=True, slots=True)
class AlertState:
    """The subject's open alert, as the app knows it."""

    level: AlertLevel
    last_above_on: date  # last day the score was at or above Policy.hold_line


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # "none" | "open" | "escalate" | "keep" | "resolve"
    level: AlertLevel | None  # level after the decision (None for none/resolve)
    publish_now: bool  # send to subscribers at once (per-level policy)
    needs_review: bool  # flag for officer review (critical sent at once is still reviewed)
    reason: str

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")


def level_for(score: float, policy: Policy) -> AlertLevel | None:
    """The highest level whose threshold the score reaches (>=), or None below info."""
    reached = [level for level in AlertLevel if score >= policy.thresholds[level]]
    return max(reached) if reached else None


def decide(
    score: float, state: AlertState | None, as_of: date, policy: Policy = Policy()
) -> Decision:
    """One alert per subject: open at min_level or above; escalate to a higher level; never
    de-escalate (an officer decides that); resolve once the score has stayed below
    Policy.hold_line for quiet_days days since state.last_above_on. Opening and escalating
    always ask for review; publish_now follows publish_immediately for the new level."""
    level = level_for(score, policy)
    shown = f"score {score:.1f}"
    if state is None:
        if level is None or level < policy.min_level:
            reached = f"{level.value} ({policy.thresholds[level]:g})" if level else "no level"
            minimum = f"{policy.min_level.value} {policy.thresholds[policy.min_level]:g}"
            return Decision(
                "none", None, False, False, f"{shown} reaches {reached}; below {minimum}"
            )
        return Decision(
            "open",
            level,
            level in policy.publish_immediately,
            True,
            f"{shown} reaches {level.value} ({policy.thresholds[level]:g})",
        )
    if level is not None and level > state.level:
        return Decision(
            "escalate",
            level,
            level in policy.publish_immediately,
            True,
            f"{shown} reaches {level.value} ({policy.thresholds[level]:g}), "
            f"above the open {state.level.value}",
        )
    if score >= policy.hold_line:
        if score >= policy.thresholds[state.level]:
            why = f"{shown} holds {state.level.value} ({policy.thresholds[state.level]:g})"
        else:
            why = (
                f"{shown} is below {state.level.value} ({policy.thresholds[state.level]:g}); "
                "alerts are not lowered automatically"
            )
        return Decision("keep", state.level, False, False, why)
    quiet = (as_of - state.last_above_on).days
    below = f"{shown} below {policy.hold_line:g} ({policy.min_level.value} minus hysteresis)"
    if quiet >= policy.quiet_days:
        return Decision(
            "resolve",
            None,
            False,
            False,
            f"{below} for {quiet} days since {state.last_above_on.isoformat()} "
            f"(resolves after {policy.quiet_days})",
        )
    return Decision(
        "keep",
        state.level,
        False,
        False,
        f"{below} for {quiet} of {policy.quiet_days} days before it resolves",
    )
