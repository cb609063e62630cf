"""Idempotency-Key handling: a retry replays the first response; nothing is stored twice.

Protocol, per (lab, key):
1. reserve: insert a row with no response yet, in its own short transaction; the unique
   constraint makes exactly one concurrent request win;
2. the winner does the work and stores the response in the SAME transaction as the work, so a
   crash leaves either both or neither;
3. a loser finds the row: same request and a stored response -> replay it; same request still in
   flight -> 409; a different request under the same key -> 422.
A reservation whose work failed is removed so that the key can be used again; one abandoned by
a crashed process is taken over after a timeout (RESERVATION_TIMEOUT by default). The
reservation's time is its fence: the response is stored only while the record still carries it,
so if a request that was merely slow is taken over, only one of the two can commit its work.
Keys are kept for at least KEEP_FOR (a cleanup job deletes older ones).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db import utc_now
from app.errors import ConflictError, FieldError, InvalidFieldsError
from app.models import IdempotencyRecord

KEEP_FOR = timedelta(hours=48)
RESERVATION_TIMEOUT = timedelta(minutes=2)
MAX_KEY_LENGTH = 200


def request_hash(method_path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method_path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Replay:
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reservation:
    """This request holds the key since `reserved_at` (the record's created_at)."""

    organisation_id: int
    key: str
    reserved_at: datetime


# On the table, not the mapped class: plain Core statements, compiled once (they run on every
# request that sends a key).
_TABLE = cast(Table, IdempotencyRecord.__table__)
_RESERVE = insert(_TABLE)
# "The record still carries this reservation": the fence both completion and release check.
_HELD = (
    (_TABLE.c.organisation_id == bindparam("held_organisation"))
    & (_TABLE.c.key == bindparam("held_key"))
    & (_TABLE.c.created_at == bindparam("held_at"))
    & _TABLE.c.status_code.is_(None)
)
_COMPLETE = (
    update(_TABLE)
    .where(_HELD)
    .values(status_code=bindparam("new_status"), response_body=bindparam("new_body"))
)
_RELEASE = delete(_TABLE).where(_HELD)


def _held(reservation: Reservation) -> dict[str, Any]:
    """The parameters of _HELD for a reservation."""
    return {
        "held_organisation": reservation.organisation_id,
        "held_key": reservation.key,
        "held_at": reservation.reserved_at,
    }


def reserve(
    sessions: sessionmaker[Session],
    organisation_id: int,
    key: str,
    method_path: str,
    fingerprint: str,
    *,
    timeout: timedelta = RESERVATION_TIMEOUT,
) -> Replay | Reservation:
    """Reserve the key for this request, or return the stored response to replay."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidFieldsError(
            [FieldError("header.Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} characters")]
        )
    reserved_at = utc_now()
    try:
        with sessions.begin() as session:
            session.execute(
                _RESERVE,
                {
                    "organisation_id": organisation_id,
                    "key": key,
                    "method_path": method_path,
                    "request_hash": fingerprint,
                    "created_at": reserved_at,
                },
            )
        return Reservation(organisation_id, key, reserved_at)
    except IntegrityError:
        pass
    with sessions.begin() as session:
        record = session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.organisation_id == organisation_id, IdempotencyRecord.key == key
            )
        )
        if record is None:  # released between our insert and this read: try once more
            reserved_at = utc_now()
            session.add(
                IdempotencyRecord(
                    organisation_id=organisation_id,
                    key=key,
                    method_path=method_path,
                    request_hash=fingerprint,
                    created_at=reserved_at,
                )
            )
            return Reservation(organisation_id, key, reserved_at)
        if record.request_hash != fingerprint:
            raise InvalidFieldsError(
                [
                    FieldError(
                        "header.Idempotency-Key",
                        "was used with a different request; use a new key for a new request",
                    )
                ]
            )
        if record.status_code is not None and record.response_body is not None:
            return Replay(record.status_code, record.response_body)
        if utc_now() - record.created_at > timeout:
            # Abandoned, most likely by a crashed process: take it over (moving the fence).
            reserved_at = utc_now()
            record.created_at = reserved_at
            return Reservation(organisation_id, key, reserved_at)
    raise ConflictError("a request with this Idempotency-Key is still being processed")


def complete(
    session: Session, reservation: Reservation, status_code: int, body: dict[str, Any]
) -> None:
    """Store the response in the caller's transaction (the one that did the work), if the key
    is still ours; if a retry took it over meanwhile, fail so that this work is rolled back.
    (On PostgreSQL the UPDATE waits for a competing holder's transaction, then re-checks.)"""
    result = session.execute(
        _COMPLETE, _held(reservation) | {"new_status": status_code, "new_body": body}
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(
            "this request's Idempotency-Key was taken over by a retry; retry to get its response"
        )


def release(sessions: sessionmaker[Session], reservation: Reservation) -> None:
    """Drop a reservation whose work failed, so the key can be used again."""
    with sessions.begin() as session:
        session.execute(_RELEASE, _held(reservation))


def purge_expired(session: Session) -> int:
    """Delete records older than KEEP_FOR; returns how many."""
    result = session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utc_now() - KEEP_FOR)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
