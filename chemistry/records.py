"""An Analysis as plain JSON and back, so that analyses can be kept and shared (the service
stores them in its database for its other processes).

Exact: `from_record(to_record(a), references) == a` for every Analysis whose matched reference
is among `references` (floats survive JSON unchanged; the fingerprint travels as base64).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from chemistry.analysis import Analysis, Neighbour, Reference
from chemistry.effects import EffectPrediction
from chemistry.generic_definitions import DefinitionMatch
from chemistry.structures import Identity
from chemistry.vocabulary import ChemicalGroup, EffectGroup

RECORD_VERSION = 1


def to_record(analysis: Analysis) -> dict[str, Any]:
    identity = analysis.identity
    return {
        "v": RECORD_VERSION,
        "input": analysis.input,
        "identity": (
            [
                identity.smiles,
                identity.inchi,
                identity.inchikey,
                identity.formula,
                identity.exact_mass,
            ]
            if identity
            else None
        ),
        "chemical_group": analysis.chemical_group.value if analysis.chemical_group else None,
        "chemical_group_rule": analysis.chemical_group_rule,
        "effect": (
            [analysis.effect.effect_group.value, analysis.effect.confidence]
            if analysis.effect
            else None
        ),
        "match": analysis.match.inchikey if analysis.match else None,
        "nearest": [[n.name, n.inchikey, n.similarity] for n in analysis.nearest],
        "analogue_of": [[n.name, n.inchikey, n.similarity] for n in analysis.analogue_of],
        "generic_definitions": [[d.id, d.title, d.rule] for d in analysis.generic_definitions],
        "error": analysis.error,
        "fingerprint": (
            base64.b64encode(analysis.fingerprint).decode() if analysis.fingerprint else None
        ),
    }


def from_record(record: Mapping[str, Any], references: Mapping[str, Reference]) -> Analysis | None:
    """The Analysis a record holds, or None when it cannot be trusted to be current: another
    record version, or a matched reference that `references` (keyed by InChIKey) lacks."""
    if record.get("v") != RECORD_VERSION:
        return None
    match: Reference | None = None
    if record["match"] is not None:
        match = references.get(record["match"])
        if match is None:
            return None
    identity = record["identity"]
    effect = record["effect"]
    group = record["chemical_group"]
    fingerprint = record["fingerprint"]
    return Analysis(
        input=record["input"],
        identity=Identity(*identity) if identity else None,
        chemical_group=ChemicalGroup(group) if group else None,
        chemical_group_rule=record["chemical_group_rule"],
        effect=EffectPrediction(EffectGroup(effect[0]), effect[1]) if effect else None,
        match=match,
        nearest=tuple(Neighbour(*n) for n in record["nearest"]),
        analogue_of=tuple(Neighbour(*n) for n in record["analogue_of"]),
        generic_definitions=tuple(DefinitionMatch(*d) for d in record["generic_definitions"]),
        error=record["error"],
        fingerprint=base64.b64decode(fingerprint) if fingerprint else None,
    )
