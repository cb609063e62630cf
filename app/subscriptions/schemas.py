"""Shapes of the subscriber and delivery API (key names are a contract)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

import pycountry
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerts.levels import AlertLevel
from app.inputs import IsoDateTime
from app.models.enums import SubscriberKind
from chemistry.vocabulary import ChemicalGroup, EffectGroup

_EMAIL = re.compile(
    r"^[^@\s<>\"',;]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(Strict):
    countries: list[str] = Field(default_factory=list, description="ISO 3166-1 alpha-2; empty: all")
    chemical_groups: list[ChemicalGroup] = Field(default_factory=list)
    effect_groups: list[EffectGroup] = Field(default_factory=list)
    min_level: AlertLevel = AlertLevel.WARNING

    @field_validator("countries")
    @classmethod
    def known_countries(cls, values: list[str]) -> list[str]:
        codes = []
        for value in values:
            code = value.strip().upper()
            if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
                raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
            codes.append(code)
        return sorted(set(codes))


class EmailChannelCreate(Strict):
    type: Literal["email"]
    address: str = Field(max_length=320)

    @field_validator("address")
    @classmethod
    def plausible_address(cls, value: str) -> str:
        if not _EMAIL.match(value.strip()):
            raise ValueError(f"{value!r} is not an email address")
        return value.strip()


class WebhookChannelCreate(Strict):
    type: Literal["webhook"]
    url: str = Field(max_length=2000)


ChannelCreate = Annotated[EmailChannelCreate | WebhookChannelCreate, Field(discriminator="type")]


class SubscriberCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: SubscriberKind
    filters: Filters = Field(default_factory=Filters)
    channels: list[ChannelCreate] = Field(min_length=1, max_length=50)


class ChannelRead(BaseModel):
    id: int
    type: str
    address: str | None = None
    url: str | None = None
    active: bool
    last_error: str | None = None
    secret: str | None = Field(default=None, description="webhook signing secret: shown once")


class SubscriberRead(BaseModel):
    id: int
    name: str
    kind: str
    organisation_id: int | None
    active: bool
    filters: Filters
    channels: list[ChannelRead]


class SecretRotated(BaseModel):
    channel_id: int
    secret: str
    previous_secret_valid_until: datetime


class DeliveryRead(BaseModel):
    id: int
    message_id: str
    alert_id: int | None
    event: str
    channel_type: str
    channel_id: int | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class ReplaySince(Strict):
    since: IsoDateTime
