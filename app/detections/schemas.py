"""Request and response shapes of the detection API (field names are a contract)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pycountry
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from app.inputs import IsoDate
from app.models.enums import DetectionContext, SampleType, Technique

EARLIEST_DETECTION = date(1990, 1, 1)
# "Not in the future" is judged in the earliest time zone on Earth (UTC+14), so a lab in Kiribati
# posting today's finding is not refused while it is still yesterday in UTC.
_EARLIEST_ZONE = timezone(timedelta(hours=14))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def exactly_one_of(*keys: str) -> JsonDict:
    """JSON Schema for the rule the model validator enforces: exactly one of `keys` holds a
    string (a null counts as absent), so that the OpenAPI document states it too."""
    return {"oneOf": [{"required": [key], "properties": {key: {"type": "string"}}} for key in keys]}


class SubstanceInput(Strict):
    """Exactly one of a SMILES, an InChI or a name."""

    model_config = ConfigDict(json_schema_extra=exactly_one_of("smiles", "inchi", "name"))

    smiles: str | None = Field(default=None, max_length=1000)
    inchi: str | None = Field(default=None, max_length=2000)
    name: str | None = Field(default=None, min_length=1, max_length=300)

    @model_validator(mode="after")
    def exactly_one(self) -> SubstanceInput:
        given = [key for key in ("smiles", "inchi", "name") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of smiles, inchi or name"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind_and_text(self) -> tuple[str, str]:
        for key in ("smiles", "inchi", "name"):
            value = getattr(self, key)
            if value is not None:
                return key, value
        raise AssertionError("validated to hold exactly one value")


class Quantity(Strict):
    value: float = Field(gt=0, strict=True)
    unit: str = Field(pattern=r"^(mg|g|kg|ug|ml|l|tablets|blotters|units)$")


class DetectionCreate(Strict):
    substance: SubstanceInput
    detected_on: IsoDate
    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. DE")
    region: str | None = Field(default=None, description="ISO 3166-2 code, e.g. DE-BY")
    sample_type: SampleType
    context: DetectionContext | None = None
    technique: Technique | None = None
    purity_percent: float | None = Field(default=None, ge=0, le=100, strict=True)
    quantity: Quantity | None = None
    co_detected: list[SubstanceInput] = Field(default_factory=list, max_length=20)
    lab_reference: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("detected_on")
    @classmethod
    def plausible_date(cls, value: date) -> date:
        if value < EARLIEST_DETECTION:
            raise ValueError(f"must not be before {EARLIEST_DETECTION.isoformat()}")
        if value > datetime.now(_EARLIEST_ZONE).date():
            raise ValueError("must not be in the future")
        return value

    @field_validator("country")
    @classmethod
    def known_country(cls, value: str) -> str:
        code = value.strip().upper()
        if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return code

    @field_validator("region")
    @classmethod
    def region_in_country(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        subdivision = pycountry.subdivisions.get(code=code)  # type: ignore[no-untyped-call]
        if subdivision is None:
            raise ValueError(f"{value!r} is not an ISO 3166-2 subdivision code")
        country = info.data.get("country")
        if country is not None and subdivision.country_code != country:
            raise ValueError(f"{code} is not in country {country}")
        return code


def _not_nullable(schema: JsonDict) -> None:
    """Document a field that may be left out but not set to null (the validator refuses null)."""
    schema.pop("default", None)
    branches = schema.pop("anyOf", [])
    assert isinstance(branches, list)
    (kept,) = [branch for branch in branches if branch != {"type": "null"}]
    assert isinstance(kept, dict)
    schema.update(kept)


_KEEP_UNLESS_GIVEN: Any = Field(default=None, json_schema_extra=_not_nullable)


class DetectionUpdate(Strict):
    """A lab's correction: any subset of the fields of DetectionCreate. The fields a detection
    must have may be left out but not set to null; the others are cleared by null."""

    substance: SubstanceInput | None = _KEEP_UNLESS_GIVEN
    detected_on: IsoDate | None = _KEEP_UNLESS_GIVEN
    country: str | None = _KEEP_UNLESS_GIVEN
    region: str | None = None
    sample_type: SampleType | None = _KEEP_UNLESS_GIVEN
    context: DetectionContext | None = None
    technique: Technique | None = None
    purity_percent: float | None = Field(default=None, ge=0, le=100, strict=True)
    quantity: Quantity | None = None
    co_detected: list[SubstanceInput] | None = Field(
        default=None, max_length=20, json_schema_extra=_not_nullable
    )
    lab_reference: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator(
        "substance", "detected_on", "country", "sample_type", "co_detected", mode="before"
    )
    @classmethod
    def not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


MAX_BATCH = 1000


class DetectionBatch(Strict):
    """Up to MAX_BATCH records, each validated on its own (a bad record does not stop the rest)."""

    detections: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class MatchRead(BaseModel):
    name: str
    inchikey: str


class NeighbourRead(BaseModel):
    name: str
    inchikey: str
    similarity: float


class GenericDefinitionRead(BaseModel):
    id: str
    title: str
    rule: str


class DetectionRead(BaseModel):
    """The analysis keys of POST /v1/analyse plus the stored fields."""

    id: int
    status: str
    input: str
    input_type: str
    smiles: str | None
    inchikey: str | None
    formula: str | None
    exact_mass: float | None
    chemical_group: str | None
    effect_group: str | None
    effect_confidence: float | None
    match: MatchRead | None
    nearest: list[NeighbourRead]
    analogue_of: list[str]
    generic_definitions: list[GenericDefinitionRead]
    unidentified: bool
    cluster_id: int | None
    organisation_id: int
    detected_on: date
    country: str
    region: str | None
    sample_type: str
    context: str | None
    technique: str | None
    purity_percent: float | None
    quantity: dict[str, Any] | None
    co_detected: list[dict[str, Any]]
    lab_reference: str | None
    created_at: datetime
    updated_at: datetime
    withdrawn_at: datetime | None = None


class FieldErrorRead(BaseModel):
    field: str
    reason: str


class BatchRecordResult(BaseModel):
    index: int
    status: str = Field(description="accepted or rejected")
    detection: DetectionRead | None = None
    errors: list[FieldErrorRead] = Field(default_factory=list)


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchRecordResult]


class DetectionPage(BaseModel):
    items: list[DetectionRead]
    next_cursor: str | None
