"""Structure analysis (nothing stored), accurate-mass screening and reference-standard lookup."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from app.deps import AnalysisUser, ReadSessionDep
from app.enrichment import Enricher, resolve_name
from app.errors import NotFoundError
from app.models import Substance, SubstanceName
from app.substances.schemas import (
    AnalyseRequest,
    AnalysisRead,
    MassCandidateRead,
    MassRequest,
    SubstanceRead,
)
from chemistry.mass import MassReference, screen
from reference_standards import normalise_name

router = APIRouter(prefix="/v1", tags=["analysis"])


@router.post("/analyse", response_model=AnalysisRead)
def analyse(
    body: AnalyseRequest, request: Request, session: ReadSessionDep, caller: AnalysisUser
) -> dict[str, Any]:
    """Standardise, identify, match, classify and flag one structure. Nothing is stored.
    An unparsable structure is a 422 naming the field and RDKit's reason."""
    enricher: Enricher = request.app.state.enricher
    kind, text = ("smiles", body.smiles) if body.smiles is not None else ("inchi", body.inchi)
    assert text is not None
    return enricher.enrich(session, kind, text, field_prefix="body").contract()


@router.post("/analyse/mass", response_model=list[MassCandidateRead])
def analyse_mass(
    body: MassRequest, session: ReadSessionDep, caller: AnalysisUser
) -> list[dict[str, Any]]:
    """Reference standards whose [M+H]+ (or [M]+) lies within the tolerance of a measured m/z,
    ranked by mass error. Isomers share a formula and are listed together."""
    references = [
        MassReference(name, inchikey, formula, mass)
        for name, inchikey, formula, mass in session.execute(
            select(
                Substance.name, Substance.inchikey, Substance.formula, Substance.exact_mass
            ).where(Substance.retired_at.is_(None))
        )
    ]
    return [
        candidate.to_dict()
        for candidate in screen(
            body.mz, references, adduct=body.adduct, tolerance_ppm=body.tolerance_ppm
        )
    ]


def _view(substance: Substance) -> dict[str, Any]:
    return {
        "id": substance.id,
        "name": substance.name,
        "synonyms": substance.synonyms,
        "smiles": substance.smiles,
        "inchikey": substance.inchikey,
        "formula": substance.formula,
        "exact_mass": substance.exact_mass,
        "category": substance.category.value,
        "chemical_group": substance.chemical_group.value,
        "effect_group": substance.effect_group.value,
        "control": substance.control.value,
        "control_year": substance.control_year,
        "potency_tier": substance.potency_tier.value,
        "first_reported": substance.first_reported,
        "source": substance.source,
        "retired": substance.retired_at is not None,
    }


@router.get("/substances", response_model=list[SubstanceRead])
def search_substances(
    session: ReadSessionDep,
    caller: AnalysisUser,
    name: Annotated[
        str,
        Query(
            min_length=1,
            max_length=300,
            description="name or synonym; a prefix, ignoring case and punctuation",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    key = normalise_name(name)
    exact = resolve_name(session, name)
    rows: list[Substance] = (
        list(
            session.scalars(
                # Not DISTINCT over the substance row: PostgreSQL cannot compare its JSON columns.
                select(Substance)
                .where(
                    Substance.id.in_(
                        select(SubstanceName.substance_id).where(
                            SubstanceName.normalised.startswith(key)
                        )
                    )
                )
                .order_by(Substance.name)
                .limit(limit)
            )
        )
        if key
        else []
    )
    found = ([exact] if exact else []) + [s for s in rows if exact is None or s.id != exact.id]
    return [_view(substance) for substance in found[:limit]]


@router.get(
    "/substances/{inchikey}",
    response_model=SubstanceRead,
    responses={404: {"description": "no reference standard with this InChIKey"}},
)
def read_substance(inchikey: str, session: ReadSessionDep, caller: AnalysisUser) -> dict[str, Any]:
    substance = session.scalar(select(Substance).where(Substance.inchikey == inchikey.upper()))
    if substance is None:
        raise NotFoundError(f"no reference standard with InChIKey {inchikey}")
    return _view(substance)
