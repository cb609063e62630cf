"""Enrich a reported substance: resolve names, run the chemistry, match reference standards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import FieldError, InvalidFieldsError
from app.models import Substance, SubstanceName
from app.models.enums import InputType
from chemistry.errors import InvalidStructureError
from chemistry.structures import Identity, identify_text
from reference_standards import normalise_name


@dataclass(frozen=True, slots=True)
class Enrichment:
    input_type: InputType
    input_text: str
    identity: Identity | None
    substance: Substance | None  # exact match to a reference standard
    unidentified: bool  # a name that matches no reference standard
    analysis: dict[str, Any] = field(default_factory=dict)  # the contract keys of /v1/analyse


def resolve_name(session: Session, name: str) -> Substance | None:
    """Find a reference standard by name or synonym, ignoring case and punctuation."""
    key = normalise_name(name)
    if not key:
        return None
    return session.scalar(
        select(Substance).join(SubstanceName).where(SubstanceName.normalised == key)
    )


def _substance_analysis(substance: Substance | None) -> dict[str, Any]:
    if substance is None:
        return {
            "chemical_group": None,
            "effect_group": None,
            "effect_confidence": None,
            "match": None,
        }
    return {
        "chemical_group": substance.chemical_group.value,
        "effect_group": substance.effect_group.value,
        "effect_confidence": 1.0,
        "match": {"name": substance.name, "inchikey": substance.inchikey},
    }


def enrich(
    session: Session, kind: str, text: str, *, field_prefix: str = "substance"
) -> Enrichment:
    """Identify one reported substance; an unparsable structure is a 422 naming the field."""
    input_type = InputType(kind)
    if input_type is InputType.NAME:
        substance = resolve_name(session, text)
        identity = None
        if substance is not None:
            identity = Identity(
                smiles=substance.smiles,
                inchi=substance.inchi,
                inchikey=substance.inchikey,
                formula=substance.formula,
                exact_mass=substance.exact_mass,
            )
        return Enrichment(
            input_type=input_type,
            input_text=text,
            identity=identity,
            substance=substance,
            unidentified=substance is None,
            analysis=_analysis(text, identity, substance),
        )
    try:
        identity = identify_text(text, kind)
    except InvalidStructureError as error:
        raise InvalidFieldsError([FieldError(f"{field_prefix}.{kind}", error.reason)]) from error
    substance = session.scalar(select(Substance).where(Substance.inchikey == identity.inchikey))
    return Enrichment(
        input_type=input_type,
        input_text=text,
        identity=identity,
        substance=substance,
        unidentified=False,
        analysis=_analysis(text, identity, substance),
    )


def _analysis(text: str, identity: Identity | None, substance: Substance | None) -> dict[str, Any]:
    return {
        "input": text,
        "smiles": identity.smiles if identity else None,
        "inchikey": identity.inchikey if identity else None,
        "formula": identity.formula if identity else None,
        "exact_mass": identity.exact_mass if identity else None,
        **_substance_analysis(substance),
        "nearest": [],
        "analogue_of": [],
        "generic_definitions": [],
        "error": None,
    }
