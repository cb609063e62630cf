"""The outcome of one delivery attempt, as every transport reports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's result: `ok`, or a failure that is transient (retry) or `permanent`.

    `retry_after` is the receiver's requested wait in seconds (Retry-After), if it sent one;
    `status` is the HTTP status or SMTP reply code when there was one; `detail` is a short,
    human-readable reason, including at most a capped part of the receiver's response.
    """

    ok: bool
    permanent: bool = False
    retry_after: float | None = None
    status: int | None = None
    detail: str = ""
