"""Retry policy for deliveries: when to try again after a failed attempt, or give up."""

from __future__ import annotations

import random
from datetime import timedelta

# The Standard Webhooks example schedule: the first attempt is immediate, then these waits.
# Ten attempts over about 3 days 3 hours, after which the delivery is dead-lettered.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
MAX_RETRY_AFTER = timedelta(hours=24)


def next_attempt_delay(
    attempts_made: int,
    *,
    rng: random.Random,
    jitter: float = 0.1,
    retry_after: float | None = None,
) -> timedelta | None:
    """How long to wait before the next attempt, or None when the schedule is exhausted.

    `attempts_made` counts the attempts already made, including the one that just failed
    (1 after the first failure). The scheduled wait is spread by a uniform factor in
    [1 - jitter, 1 + jitter] (default +/-10%) so that endpoints failing together do not retry
    together. A receiver's Retry-After (`retry_after`, seconds) replaces the wait when it is
    longer, capped at 24 hours; it never extends the number of attempts.
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be at least 1, not {attempts_made}")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), not {jitter}")
    if attempts_made > len(RETRY_SCHEDULE):
        return None
    scheduled = RETRY_SCHEDULE[attempts_made - 1]
    delay = scheduled * (1 + rng.uniform(-jitter, jitter))
    if retry_after is not None and retry_after > 0:  # False for NaN too
        seconds = min(retry_after, MAX_RETRY_AFTER.total_seconds())
        delay = max(delay, timedelta(seconds=seconds))
    return delay
