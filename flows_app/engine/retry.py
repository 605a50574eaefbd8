"""When a failed attempt is tried again, by the task's retry policy (Kestra's constant, exponential, random)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from flows_app.spec.model import RetrySpec


def delay_before(retry: RetrySpec, attempts_done: int) -> timedelta:
    """The wait before attempt number `attempts_done + 1`."""
    if retry.type == "constant":
        return retry.interval or timedelta()
    if retry.type == "exponential":
        factor = retry.delay_factor if retry.delay_factor is not None else 2.0
        delay = (retry.interval or timedelta(seconds=1)) * (factor ** max(attempts_done - 1, 0))
        return min(delay, retry.max_interval) if retry.max_interval else delay
    low = (retry.min_interval or timedelta()).total_seconds()
    high = (retry.max_interval or retry.min_interval or timedelta()).total_seconds()
    return timedelta(seconds=random.uniform(low, max(low, high)))


def next_attempt_at(
    retry: RetrySpec | None, attempts_done: int, first_started: datetime | None, now: datetime
) -> datetime | None:
    """The time of the next attempt, or None when the policy is spent (maxAttempt counts every attempt)."""
    if retry is None:
        return None
    if retry.max_attempts is not None and attempts_done >= retry.max_attempts:
        return None
    at = now + delay_before(retry, attempts_done)
    if retry.max_duration is not None and first_started is not None and at - first_started > retry.max_duration:
        return None
    return at
