"""Load the reference library into the database: idempotent upsert, retire what was removed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db import utc_now
from app.models import Substance, SubstanceName
from chemistry.fingerprints import DEFAULT_SPEC, fingerprint
from chemistry.similarity import SimilarityIndex
from chemistry.structures import parse, standardise
from chemistry.vocabulary import HIGHLY_POTENT
from reference_standards import Library, ReferenceRecord, normalise_name


@dataclass(frozen=True, slots=True)
class LoadCounts:
    added: int
    updated: int
    unchanged: int
    retired: int


def _fields(record: ReferenceRecord) -> dict[str, Any]:
    identity = record.identity
    return {
        "name": record.name,
        "synonyms": list(record.synonyms),
        "smiles": identity.smiles,
        "inchi": identity.inchi,
        "formula": identity.formula,
        "exact_mass": identity.exact_mass,
        "category": record.category,
        "chemical_group": record.chemical_group,
        "effect_group": record.effect_group,
        "control": record.control,
        "control_year": record.control_year,
        "potency_tier": record.potency_tier,
        "first_reported": record.first_reported,
        "source": record.source,
    }


def _chemistry(library: Library) -> dict[str, tuple[bytes, float]]:
    """Fingerprint of each record, and its max similarity to another highly potent record."""
    prints = {
        record.identity.inchikey: fingerprint(standardise(parse(record.identity.smiles)))
        for record in library.records
    }
    potent = SimilarityIndex(DEFAULT_SPEC)
    keys = [r.identity.inchikey for r in library.records if r.potency_tier in HIGHLY_POTENT]
    potent.add(keys, [prints[key] for key in keys])
    result: dict[str, tuple[bytes, float]] = {}
    for key, packed in prints.items():
        hits = [hit.similarity for hit in potent.top_k(packed, 2) if hit.key != key]
        result[key] = (packed, round(max(hits, default=0.0), 4))
    return result


def load_library_into(session: Session, library: Library) -> LoadCounts:
    """Upsert every record by InChIKey; substances no longer in the files are retired.

    Retired substances stay in the database (detections point at them) but lose their names,
    so name lookups only find current reference standards.
    """
    existing = {s.inchikey: s for s in session.scalars(select(Substance))}
    chemistry = _chemistry(library)
    added = updated = unchanged = 0
    seen: set[str] = set()
    changed_names: list[Substance] = []
    for record in library.records:
        key = record.identity.inchikey
        seen.add(key)
        values = _fields(record)
        packed, potent_similarity = chemistry[key]
        values |= {
            "fingerprint": packed,
            "fingerprint_spec": DEFAULT_SPEC.key,
            "potent_similarity": potent_similarity,
        }
        substance = existing.get(key)
        if substance is None:
            substance = Substance(inchikey=key, **values)
            session.add(substance)
            changed_names.append(substance)
            added += 1
            continue
        differs = {name for name, value in values.items() if getattr(substance, name) != value}
        if differs or substance.retired_at is not None:
            for name in differs:
                setattr(substance, name, values[name])
            substance.retired_at = None
            changed_names.append(substance)
            updated += 1
        else:
            unchanged += 1
    retired = 0
    for key, substance in existing.items():
        if key not in seen and substance.retired_at is None:
            substance.retired_at = utc_now()
            retired += 1
    session.flush()
    _rebuild_names(session, changed_names, [s for k, s in existing.items() if k not in seen])
    return LoadCounts(added=added, updated=updated, unchanged=unchanged, retired=retired)


def _rebuild_names(session: Session, changed: list[Substance], retired: list[Substance]) -> None:
    ids = [substance.id for substance in [*changed, *retired]]
    if ids:
        session.execute(delete(SubstanceName).where(SubstanceName.substance_id.in_(ids)))
        session.flush()
    for substance in changed:
        seen: set[str] = set()
        for name in (substance.name, *substance.synonyms):
            normalised = normalise_name(name)
            if normalised and normalised not in seen:
                seen.add(normalised)
                session.add(
                    SubstanceName(substance_id=substance.id, name=name, normalised=normalised)
                )
    session.flush()
