"""Enrich a reported substance: resolve names, run the chemistry, match reference standards."""

from __future__ import annotations

import threading
from collections import OrderedDict
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
    substance_id: int | None  # exact match to a reference standard
    unidentified: bool  # a name that matches no reference standard
    analysis: dict[str, Any] = field(default_factory=dict)  # the contract keys of /v1/analyse


def resolve_name(session: Session, name: str) -> Substance | None:
    """Find a current reference standard by name or synonym, ignoring case and punctuation."""
    key = normalise_name(name)
    if not key:
        return None
    return session.scalar(
        select(Substance).join(SubstanceName).where(SubstanceName.normalised == key)
    )


def _identity_of(substance: Substance) -> Identity:
    return Identity(
        smiles=substance.smiles,
        inchi=substance.inchi,
        inchikey=substance.inchikey,
        formula=substance.formula,
        exact_mass=substance.exact_mass,
    )


def _analysis(text: str, identity: Identity | None, substance: Substance | None) -> dict[str, Any]:
    return {
        "input": text,
        "smiles": identity.smiles if identity else None,
        "inchikey": identity.inchikey if identity else None,
        "formula": identity.formula if identity else None,
        "exact_mass": identity.exact_mass if identity else None,
        "chemical_group": substance.chemical_group.value if substance else None,
        "effect_group": substance.effect_group.value if substance else None,
        "effect_confidence": 1.0 if substance else None,
        "match": {"name": substance.name, "inchikey": substance.inchikey} if substance else None,
        "nearest": [],
        "analogue_of": [],
        "generic_definitions": [],
        "error": None,
    }


class Enricher:
    """Turns a reported substance into its identity and analysis.

    Results for structures are cached (bounded LRU keyed on the input), since labs report the
    same few thousand structures again and again; the cache is dropped whenever the reference
    library changes (`invalidate`).
    """

    def __init__(self, cache_size: int = 20_000) -> None:
        self._cache: OrderedDict[tuple[str, str], Enrichment] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def enrich(
        self, session: Session, kind: str, text: str, *, field_prefix: str = "substance"
    ) -> Enrichment:
        """Identify one reported substance; an unparsable structure is a 422 naming the field."""
        input_type = InputType(kind)
        cache_key = (kind, text)
        with self._lock:
            cached = self._cache.get(cache_key)
            if cached is not None:
                self._cache.move_to_end(cache_key)
                return cached
        result = self._compute(session, input_type, text, field_prefix)
        with self._lock:
            self._cache[cache_key] = result
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def _compute(
        self, session: Session, input_type: InputType, text: str, field_prefix: str
    ) -> Enrichment:
        if input_type is InputType.NAME:
            substance = resolve_name(session, text)
            identity = _identity_of(substance) if substance is not None else None
        else:
            try:
                identity = identify_text(text, input_type.value)
            except InvalidStructureError as error:
                raise InvalidFieldsError(
                    [FieldError(f"{field_prefix}.{input_type.value}", error.reason)]
                ) from error
            substance = session.scalar(
                select(Substance).where(Substance.inchikey == identity.inchikey)
            )
        return Enrichment(
            input_type=input_type,
            input_text=text,
            identity=identity,
            substance_id=substance.id if substance is not None else None,
            unidentified=input_type is InputType.NAME and substance is None,
            analysis=_analysis(text, identity, substance),
        )
