"""Retry schedule: Standard Webhooks waits with jitter, Retry-After honoured, then a dead letter."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from alerts.delivery import MAX_ATTEMPTS, RETRY_SCHEDULE, next_attempt_delay

HOUR = 3600


def test_schedule_is_the_standard_webhooks_example() -> None:
    seconds = [delay.total_seconds() for delay in RETRY_SCHEDULE]
    assert seconds == [5, 300, 1800, 2 * HOUR, 5 * HOUR, 10 * HOUR, 14 * HOUR, 20 * HOUR, 24 * HOUR]
    assert MAX_ATTEMPTS == 10


def test_without_jitter_each_failure_waits_the_scheduled_time() -> None:
    rng = random.Random(7)
    waits = [next_attempt_delay(n, rng=rng, jitter=0) for n in range(1, MAX_ATTEMPTS)]
    assert waits == list(RETRY_SCHEDULE)


def test_schedule_is_exhausted_after_the_last_attempt() -> None:
    rng = random.Random(7)
    assert next_attempt_delay(MAX_ATTEMPTS, rng=rng) is None
    assert next_attempt_delay(MAX_ATTEMPTS + 5, rng=rng, retry_after=60) is None


def test_jitter_stays_within_ten_percent_and_varies() -> None:
    rng = random.Random(20261128)
    waits = [next_attempt_delay(2, rng=rng) for _ in range(200)]
    assert all(
        w is not None and timedelta(minutes=4.5) <= w <= timedelta(minutes=5.5) for w in waits
    )
    assert len(set(waits)) > 150


def test_same_seed_gives_the_same_waits() -> None:
    first = [next_attempt_delay(n, rng=random.Random(1)) for n in range(1, MAX_ATTEMPTS)]
    again = [next_attempt_delay(n, rng=random.Random(1)) for n in range(1, MAX_ATTEMPTS)]
    assert first == again


def test_longer_retry_after_is_honoured() -> None:
    delay = next_attempt_delay(1, rng=random.Random(3), retry_after=120)
    assert delay == timedelta(seconds=120)


def test_shorter_retry_after_does_not_shorten_the_wait() -> None:
    delay = next_attempt_delay(3, rng=random.Random(3), retry_after=10)
    assert delay is not None
    assert delay >= timedelta(minutes=27)


@pytest.mark.parametrize("retry_after", [7 * 24 * HOUR, math.inf])
def test_retry_after_is_capped_at_a_day(retry_after: float) -> None:
    delay = next_attempt_delay(1, rng=random.Random(3), retry_after=retry_after)
    assert delay == timedelta(hours=24)


@pytest.mark.parametrize("retry_after", [0, -5, math.nan])
def test_meaningless_retry_after_is_ignored(retry_after: float) -> None:
    delay = next_attempt_delay(1, rng=random.Random(3), jitter=0, retry_after=retry_after)
    assert delay == timedelta(seconds=5)


@pytest.mark.parametrize(("attempts", "jitter"), [(0, 0.1), (-1, 0.1), (1, 1.0), (1, -0.1)])
def test_invalid_arguments_are_refused(attempts: int, jitter: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        next_attempt_delay(attempts, rng=random.Random(0), jitter=jitter)
