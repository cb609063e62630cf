"""Shapes of the analysis and substance API (the analysis keys are a contract)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.detections.schemas import (
    GenericDefinitionRead,
    MatchRead,
    NeighbourRead,
    exactly_one_of,
)
from chemistry.mass import Adduct


class AnalyseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one_of("smiles", "inchi"))
    smiles: str | None = Field(default=None, max_length=1000)
    inchi: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def exactly_one(self) -> AnalyseRequest:
        if (self.smiles is None) == (self.inchi is None):
            raise ValueError("give exactly one of smiles or inchi")
        return self


class AnalysisRead(BaseModel):
    input: str
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
    error: str | None


class MassRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mz: float = Field(gt=0, lt=5000, strict=True, description="measured m/z")
    adduct: Adduct = Adduct.PROTONATED
    tolerance_ppm: float = Field(default=5.0, ge=0, le=100, strict=True)


class MassCandidateRead(BaseModel):
    name: str
    inchikey: str
    formula: str
    expected_mz: float
    ppm_error: float


class SubstanceRead(BaseModel):
    id: int
    name: str
    synonyms: list[str]
    smiles: str
    inchikey: str
    formula: str
    exact_mass: float
    category: str
    chemical_group: str
    effect_group: str
    control: str
    control_year: int | None
    potency_tier: str
    first_reported: int | None
    source: str
    retired: bool
