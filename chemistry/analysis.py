"""The whole pipeline for one structure: identify, match, classify, flag analogues."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chemistry.classification import chemical_group
from chemistry.effects import EffectPrediction, TanimotoNeighboursClassifier, combine_effect
from chemistry.errors import InvalidStructureError
from chemistry.fingerprints import DEFAULT_SPEC, FingerprintSpec, fingerprint
from chemistry.generic_definitions import DefinitionMatch, generic_definitions
from chemistry.similarity import Hit, SimilarityIndex
from chemistry.structures import Identity, StructureFormat, identify, parse, standardise
from chemistry.types import Mol
from chemistry.vocabulary import (
    HIGHLY_POTENT,
    Category,
    ChemicalGroup,
    ControlStatus,
    EffectGroup,
    PotencyTier,
)

# Tanimoto (Morgan r2, 2048 bits) at or above which a controlled or highly potent reference is
# reported as the structure's analogue. Measured on the reference library (1,137 records):
# at 0.5, 95% of records have a same-group neighbour at or above it and 3.5% a cross-group
# one (0.4: 98% / 20%; 0.6: 90% / 0.6%). On the NPS-FACL sample, 0.5 flags 2 of 72
# medicines (nalorphine ~ morphine, cannabidiol ~ dronabinol: both real structural kin).
ANALOGUE_THRESHOLD = 0.5
NEAREST_K = 5
# Neighbours that vote on the effect group: 5, each weighted by its similarity; neighbours
# below 0.3 (unrelated at Morgan r2, see above) do not vote.
EFFECT_NEIGHBOURS = 5
EFFECT_MIN_SIMILARITY = 0.3


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference standard as the analyser needs it; the app builds these from its rows."""

    name: str
    inchikey: str
    smiles: str
    chemical_group: ChemicalGroup
    effect_group: EffectGroup
    control: ControlStatus
    potency_tier: PotencyTier
    category: Category

    @property
    def flags_analogues(self) -> bool:
        """Controlled or highly potent, and never a cutting agent."""
        return self.category.of_concern and (
            self.control is not ControlStatus.NONE or self.potency_tier in HIGHLY_POTENT
        )


@dataclass(frozen=True, slots=True)
class Neighbour:
    name: str
    inchikey: str
    similarity: float  # Tanimoto in (0, 1]


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the pipeline says about one input; `to_dict` gives the public contract."""

    input: str
    identity: Identity | None = None
    chemical_group: ChemicalGroup | None = None
    chemical_group_rule: str = ""  # the SMARTS rule, or "reference standard" for a match
    effect: EffectPrediction | None = None
    match: Reference | None = None
    nearest: tuple[Neighbour, ...] = ()
    analogue_of: tuple[Neighbour, ...] = ()
    generic_definitions: tuple[DefinitionMatch, ...] = ()
    error: str | None = None
    fingerprint: bytes | None = field(default=None, repr=False)  # for clustering; spec-bound

    def to_dict(self) -> dict[str, Any]:
        identity = self.identity
        return {
            "input": self.input,
            "smiles": identity.smiles if identity else None,
            "inchikey": identity.inchikey if identity else None,
            "formula": identity.formula if identity else None,
            "exact_mass": identity.exact_mass if identity else None,
            "chemical_group": self.chemical_group.value if self.chemical_group else None,
            "effect_group": self.effect.effect_group.value if self.effect else None,
            "effect_confidence": round(self.effect.confidence, 4) if self.effect else None,
            "match": (
                {"name": self.match.name, "inchikey": self.match.inchikey} if self.match else None
            ),
            "nearest": [
                {"name": n.name, "inchikey": n.inchikey, "similarity": round(n.similarity, 4)}
                for n in self.nearest
            ],
            "analogue_of": [n.name for n in self.analogue_of],
            "generic_definitions": [d.to_dict() for d in self.generic_definitions],
            "error": self.error,
        }


class Analyser:
    """Holds the reference index and effect estimator; analyses one structure at a time.

    Built once per reference set (about 1.5 s for 1,100 references) and then read-only, so
    one instance can serve many threads.
    """

    def __init__(
        self,
        references: Sequence[Reference],
        *,
        spec: FingerprintSpec = DEFAULT_SPEC,
        analogue_threshold: float = ANALOGUE_THRESHOLD,
        nearest_k: int = NEAREST_K,
    ) -> None:
        self.spec = spec
        self.analogue_threshold = analogue_threshold
        self.nearest_k = nearest_k
        self.references = {reference.inchikey: reference for reference in references}
        keys = list(self.references)
        packed = np.zeros((len(keys), spec.n_bytes), dtype=np.uint8)
        for row, key in enumerate(keys):
            mol = standardise(parse(self.references[key].smiles))
            packed[row] = np.frombuffer(fingerprint(mol, spec), dtype=np.uint8)
        self.index = SimilarityIndex(spec)
        self.index.add(keys, packed)
        self.estimator: TanimotoNeighboursClassifier | None = None
        if keys:
            labels = [self.references[key].effect_group.value for key in keys]
            self.estimator = TanimotoNeighboursClassifier(
                n_neighbors=EFFECT_NEIGHBOURS, min_similarity=EFFECT_MIN_SIMILARITY
            ).fit(packed, labels)

    def analyse(self, text: str, fmt: StructureFormat | str = StructureFormat.SMILES) -> Analysis:
        """Analyse a SMILES or InChI; an invalid input gives an Analysis with `error` set."""
        try:
            return self.analyse_or_raise(text, fmt)
        except InvalidStructureError as error:
            return Analysis(input=text, error=error.reason)

    def analyse_or_raise(
        self, text: str, fmt: StructureFormat | str = StructureFormat.SMILES
    ) -> Analysis:
        """As analyse, but raise InvalidStructureError (e.g. for an HTTP 422)."""
        return self.analyse_mol(parse(text, fmt), input=text)

    def analyse_mol(self, mol: Mol, *, input: str | None = None) -> Analysis:
        parent = standardise(mol)
        identity = identify(parent)
        query = fingerprint(parent, self.spec)
        match = self.references.get(identity.inchikey)
        group, rule = self.classify(parent, match)
        return Analysis(
            input=identity.smiles if input is None else input,
            identity=identity,
            chemical_group=group,
            chemical_group_rule=rule,
            effect=self.effect(query, group, match),
            match=match,
            nearest=self.nearest(query),
            analogue_of=self.analogues(query, identity.inchikey),
            generic_definitions=tuple(generic_definitions(parent)),
            fingerprint=query,
        )

    # The steps, public so that bench/analyse.py can time each one.

    def classify(self, parent: Mol, match: Reference | None) -> tuple[ChemicalGroup, str]:
        """An exact match keeps its reviewed group; anything else gets the first SMARTS rule."""
        if match is not None:
            return match.chemical_group, "reference standard"
        found = chemical_group(parent)
        return found.group, found.rule

    def nearest(self, query: bytes) -> tuple[Neighbour, ...]:
        return tuple(self._neighbour(hit) for hit in self.index.top_k(query, self.nearest_k))

    def analogues(self, query: bytes, inchikey: str) -> tuple[Neighbour, ...]:
        """Controlled or highly potent references at or above the analogue threshold.

        The exact match itself is left out: it is reported as `match`, and a substance is not
        its own analogue. Cutting agents never flag.
        """
        return tuple(
            self._neighbour(hit)
            for hit in self.index.threshold(query, self.analogue_threshold)
            if hit.key != inchikey and self.references[hit.key].flags_analogues
        )

    def effect(
        self, query: bytes, group: ChemicalGroup, match: Reference | None
    ) -> EffectPrediction:
        """An exact match keeps its recorded effect (confidence 1); otherwise the group's
        implied effect mixed with the neighbours' similarity-weighted vote."""
        if match is not None:
            return EffectPrediction(match.effect_group, 1.0)
        if self.estimator is None:
            return combine_effect(group, np.array([]), np.array([]))
        row = np.frombuffer(query, dtype=np.uint8)[None, :]
        return combine_effect(group, self.estimator.classes_, self.estimator.predict_proba(row)[0])

    def _neighbour(self, hit: Hit) -> Neighbour:
        reference = self.references[hit.key]
        return Neighbour(reference.name, reference.inchikey, hit.similarity)
