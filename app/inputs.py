"""Input types of the HTTP edge: row ids, and dates and instants exactly as the schema says."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BeforeValidator

# Row ids are PostgreSQL INTEGER columns. A larger number names nothing; unchecked, it made
# SQLite's driver raise OverflowError (a 500) once past 64 bits.
MAX_ROW_ID = 2**31 - 1

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
RowIdFilter = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


_NOT_A_DATE = "not a valid date: write it as YYYY-MM-DD"
_NOT_AN_INSTANT = (
    "not a valid date-time: write it as RFC 3339 with an offset, e.g. 2026-01-31T08:00:00Z"
)


def _iso_date(value: Any) -> Any:
    """Only YYYY-MM-DD: pydantic would also read numbers as Unix times ("0" is 1970-01-01)."""
    if isinstance(value, str) and not _DATE.fullmatch(value):
        raise ValueError(_NOT_A_DATE)
    if isinstance(value, int | float):
        raise ValueError(_NOT_A_DATE)
    return value


def _rfc3339(value: Any) -> Any:
    """Only RFC 3339 instants with a UTC offset: no Unix times, no local (naive) times."""
    if isinstance(value, str) and not _INSTANT.fullmatch(value):
        raise ValueError(_NOT_AN_INSTANT)
    if isinstance(value, int | float):
        raise ValueError(_NOT_AN_INSTANT)
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
IsoDateTime = Annotated[datetime, BeforeValidator(_rfc3339)]
