"""Jinja2 templates of the console, their filters, and the page renderer."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pycountry
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from alerts.levels import AlertLevel
from app.db import utc_now
from app.web.auth import ConsoleUser

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))


def _static_version() -> str:
    """A digest of the static files, appended to their URLs so browsers refetch on change."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.glob("*")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


STATIC_VERSION = _static_version()
DASH = "\u2013"  # an en dash: the console's mark for "no value"


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """'5 min', '3 h', '2 d', '6 wk': how long ago, compactly."""
    if moment is None:
        return DASH
    seconds = max(0.0, ((now or utc_now()) - moment.astimezone(UTC)).total_seconds())
    if seconds < 3600:
        return f"{max(1, int(seconds // 60))} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    days = int(seconds // 86400)
    return f"{days} d" if days < 28 else f"{days // 7} wk"


def timestamp(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else DASH


def day(value: date | None) -> str:
    return value.isoformat() if value else DASH


_WORDS = {"nps": "NPS", "psychoactive_medicine": "psychoactive medicine"}


def label(value: object) -> str:
    """An enum value or code as words: 'fentanyl_analogue' -> 'fentanyl analogue'."""
    if value is None:
        return DASH
    text = str(getattr(value, "value", value))
    return _WORDS.get(text, text.replace("_", " "))


def country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    return str(getattr(country, "common_name", None) or getattr(country, "name", code))


def percent(value: float | None) -> str:
    return DASH if value is None else f"{value:.0%}"


templates.env.filters.update(
    age=age, timestamp=timestamp, day=day, label=label, country_name=country_name, percent=percent
)
templates.env.globals.update(
    static_version=STATIC_VERSION,
    levels=[level.value for level in sorted(AlertLevel, reverse=True)],
)


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    user: ConsoleUser | None,
    status: int = 200,
) -> HTMLResponse:
    """A console page; never cached (pages show live, sensitive data)."""
    page = {"user": user, "csrf_token": user.csrf_token if user else "", **context}
    response = templates.TemplateResponse(request, template, page, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response
