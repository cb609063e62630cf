"""Enrich a reported substance: resolve names, run the chemistry, match reference standards."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import analysis_store
from app.catalogue import Catalogue
from app.chemistry_pool import Chemistry, chemistry_for
from app.errors import FieldError, InvalidFieldsError
from app.models import Cluster, Substance, SubstanceName
from app.models.enums import InputType
from app.settings import Settings
from chemistry.analysis import Analysis
from chemistry.errors import InvalidStructureError
from chemistry.structures import Identity
from reference_standards import normalise_name


@dataclass(frozen=True, slots=True)
class Enrichment:
    input_type: InputType
    input_text: str
    analysis: Analysis | None  # None for a name that matches no reference standard
    substance_id: int | None  # exact match to a current reference standard

    @property
    def identity(self) -> Identity | None:
        return self.analysis.identity if self.analysis else None

    @property
    def unidentified(self) -> bool:
        """A name that matches no reference standard: reported, but without a structure."""
        return self.analysis is None

    def contract(self) -> dict[str, Any]:
        """The keys of POST /v1/analyse for this input."""
        if self.analysis is None:
            return {
                "input": self.input_text,
                "smiles": None,
                "inchikey": None,
                "formula": None,
                "exact_mass": None,
                "chemical_group": None,
                "effect_group": None,
                "effect_confidence": None,
                "match": None,
                "nearest": [],
                "analogue_of": [],
                "generic_definitions": [],
                "error": None,
            }
        return self.analysis.to_dict() | {"input": self.input_text}


def resolve_name(session: Session, name: str) -> Substance | None:
    """Find a current reference standard by name or synonym, ignoring case and punctuation."""
    key = normalise_name(name)
    if not key:
        return None
    return session.scalar(
        select(Substance).join(SubstanceName).where(SubstanceName.normalised == key)
    )


class Enricher:
    """Turns a reported substance into its analysis, and unidentified structures into clusters.

    Analyses are cached (bounded LRU keyed on the input), since labs report the same few
    thousand structures again and again; the cache is emptied whenever the catalogue is rebuilt
    from a changed reference library.
    """

    def __init__(
        self,
        catalogue: Catalogue | None = None,
        cache_size: int = 20_000,
        chemistry: Chemistry | None = None,
    ) -> None:
        self.catalogue = catalogue or Catalogue()
        # Submitted structures are untrusted: their chemistry runs as SENTINEL_CHEMISTRY_ISOLATION
        # says (worker processes with limits by default); reference standards run inline.
        self.chemistry = chemistry or chemistry_for(Settings().chemistry_isolation)
        self.catalogue.on_change.append(self.invalidate)
        self._cache: OrderedDict[tuple[str, str], Enrichment] = OrderedDict()
        self._cache_size = cache_size
        # Analyses this process ran and has not stored yet (app/analysis_store.py): stored with
        # the first detection that carries them.
        self._unstored: OrderedDict[tuple[str, str], Analysis] = OrderedDict()
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
            self._unstored.clear()

    def enrich(
        self, session: Session, kind: str, text: str, *, field_prefix: str = "substance"
    ) -> Enrichment:
        """Analyse one reported substance; an invalid structure is a 422 naming the field."""
        input_type = InputType(kind)
        analyser = self.catalogue.analyser(session)  # may rebuild, emptying the cache
        cache_key = (kind, text)
        with self._lock:
            cached = self._cache.get(cache_key)
            if cached is not None:
                self._cache.move_to_end(cache_key)
                return cached
        if input_type is InputType.NAME:
            substance = resolve_name(session, text)
            analysis = analyser.analyse(substance.smiles) if substance is not None else None
        else:
            try:
                analysis = self.chemistry.analyse(analyser, text, input_type.value)
            except InvalidStructureError as error:
                raise InvalidFieldsError(
                    [FieldError(f"{field_prefix}.{input_type.value}", error.reason)]
                ) from error
        enrichment = Enrichment(input_type, text, analysis, self._substance_id(analysis))
        return self._remember(enrichment, ran=input_type is not InputType.NAME)

    def all_cached(self, inputs: Iterable[tuple[str, str]]) -> bool:
        """Whether every input (kind, text) is in the cache already (no session needed)."""
        with self._lock:
            return all(key in self._cache for key in inputs)

    def prefetch(self, session: Session, inputs: Iterable[tuple[str, str]]) -> None:
        """Enrich the inputs (kind, text) that are not cached yet, so that a write transaction
        that follows finds them cached: on SQLite a write transaction holds the database's one
        write lock, which must not wait on RDKit. Structures are analysed several at a time
        when the chemistry runs in more than one worker process. Invalid ones are left for
        `enrich` to report (the pool remembers those that timed out or crashed a worker)."""
        analyser = self.catalogue.analyser(session)  # may rebuild, emptying the cache
        with self._lock:
            todo = [key for key in dict.fromkeys(inputs) if key not in self._cache]
        structures = [key for key in todo if key[0] != InputType.NAME.value]
        for kind, text in todo:
            if kind == InputType.NAME.value:
                self.enrich(session, kind, text)
        if structures:  # analysed before, by another process or before a restart
            stored = analysis_store.load(
                session, self.catalogue.pipeline, structures, analyser.references
            )
            for (kind, text), analysis in stored.items():
                self._remember(
                    Enrichment(InputType(kind), text, analysis, self._substance_id(analysis))
                )
            structures = [key for key in structures if key not in stored]

        def analyse(key: tuple[str, str]) -> Analysis | None:
            try:
                return self.chemistry.analyse(analyser, key[1], key[0])
            except InvalidStructureError:
                return None  # enrich() analyses it again and reports the reason

        width = min(getattr(self.chemistry, "workers", 1), len(structures))
        if width > 1:
            with ThreadPoolExecutor(max_workers=width, thread_name_prefix="prefetch") as pool:
                analyses = list(pool.map(analyse, structures))
        else:
            analyses = [analyse(key) for key in structures]
        for (kind, text), result in zip(structures, analyses, strict=True):
            if result is not None:
                self._remember(
                    Enrichment(InputType(kind), text, result, self._substance_id(result)),
                    ran=True,
                )

    def store(self, session: Session, enrichment: Enrichment) -> None:
        """In the transaction storing a detection: store its analysis for the service's other
        processes, if this process ran it and has not stored it yet. Tried once: if that
        transaction rolls back, the others run the chemistry themselves (nothing is wrong,
        only slower)."""
        key = (enrichment.input_type.value, enrichment.input_text)
        with self._lock:
            analysis = self._unstored.pop(key, None)
        if analysis is not None and analysis is enrichment.analysis:
            analysis_store.save(session, self.catalogue.pipeline, {key: analysis})

    def _substance_id(self, analysis: Analysis | None) -> int | None:
        if analysis is None or analysis.identity is None:
            return None
        return self.catalogue.substance_id(analysis.identity.inchikey)

    def _remember(self, enrichment: Enrichment, *, ran: bool = False) -> Enrichment:
        key = (enrichment.input_type.value, enrichment.input_text)
        with self._lock:
            self._cache[key] = enrichment
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            if ran and enrichment.analysis is not None:
                self._unstored[key] = enrichment.analysis
                if len(self._unstored) > self._cache_size:
                    self._unstored.popitem(last=False)
        return enrichment

    def cluster_for(self, session: Session, enrichment: Enrichment) -> Cluster | None:
        """The cluster of an unidentified structure (one matching no reference standard).

        A cluster stores no member counts: they are counted from its active detections when
        shown, so joining a cluster writes nothing but the detection's cluster_id."""
        analysis = enrichment.analysis
        if enrichment.substance_id is not None or analysis is None or analysis.identity is None:
            return None
        cluster, _created = self.catalogue.cluster_for(
            session, analysis, self.catalogue.analyser(session)
        )
        return cluster
