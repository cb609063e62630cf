"""Shapes of the alert API (key names are a contract)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class SubjectRead(BaseModel):
    type: str  # "substance" or "cluster"
    name: str
    inchikey: str | None
    cluster_id: int | None


class ComponentRead(BaseModel):
    name: str
    value: float
    weight: float
    reason: str


class AlertRead(BaseModel):
    id: int
    level: str
    status: str
    score: float
    title: str
    summary: str
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    resolved_at: datetime | None
    needs_review: bool
    countries: list[str]
    subject: SubjectRead
    components: list[ComponentRead]


class AlertEventRead(BaseModel):
    action: str
    actor: str
    from_status: str | None
    to_status: str | None
    level: str | None
    score: float | None
    note: str
    created_at: datetime


class AlertDetail(AlertRead):
    history: list[AlertEventRead]


class AlertPage(BaseModel):
    items: list[AlertRead]
    counts: dict[str, int] = Field(description="open alerts per level")


class AlertAction(BaseModel):
    """An officer's action on an alert, with an optional note (a reason, for dismissals)."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)


class ScorePoint(BaseModel):
    as_of: date
    score: float
    components: list[ComponentRead]
