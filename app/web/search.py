"""Structure search for the console: by name, by Tanimoto similarity, by SMARTS substructure."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rdkit import Chem
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.enrichment import resolve_name
from app.models import Cluster, Substance, SubstanceName
from app.scoring.facts import cluster_name
from chemistry.analysis import Analyser
from chemistry.errors import InvalidStructureError
from chemistry.fingerprints import fingerprint, tanimoto
from chemistry.structures import parse, rdkit_messages, standardise
from chemistry.types import Mol
from reference_standards import normalise_name

MAX_HITS = 60
MAX_CLUSTERS_SCANNED = 20_000
MAX_SMARTS_LENGTH = 300


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str  # "substance" or "cluster"
    name: str
    inchikey: str
    href: str
    chemical_group: str | None
    potency_tier: str | None
    control: str | None
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: tuple[Hit, ...] = ()
    error: str | None = None
    truncated: bool = False


def _substance_hit(substance: Substance, similarity: float | None = None) -> Hit:
    return Hit(
        kind="substance",
        name=substance.name,
        inchikey=substance.inchikey,
        href=f"/console/substances/{substance.inchikey}",
        chemical_group=substance.chemical_group.value,
        potency_tier=substance.potency_tier.value,
        control=substance.control.value,
        similarity=similarity,
    )


def _cluster_hit(cluster: Cluster, similarity: float | None = None) -> Hit:
    return Hit(
        kind="cluster",
        name=cluster_name(cluster),
        inchikey=cluster.representative_inchikey,
        href=f"/console/clusters/{cluster.id}",
        chemical_group=cluster.chemical_group.value if cluster.chemical_group else None,
        potency_tier=cluster.potency_tier.value,
        control="analogue of a controlled substance" if cluster.controlled_analogue else None,
        similarity=similarity,
    )


def by_name(session: Session, text: str) -> SearchResult:
    """Reference standards whose name or a synonym contains the text (case and punctuation
    ignored): an exact match first, then names starting with the text, then the others."""
    key = normalise_name(text)
    if not key:
        return SearchResult(error="Type a name or synonym.")
    exact = resolve_name(session, text)
    rows = session.execute(
        select(Substance, SubstanceName.normalised)
        .join(SubstanceName)
        .where(SubstanceName.normalised.contains(key, autoescape=True))
        .limit(5 * MAX_HITS)
    ).all()
    rank: dict[int, tuple[int, str]] = {}
    found: dict[int, Substance] = {}
    for substance, name in rows:
        order = (0 if exact is not None and substance.id == exact.id else
                 1 if name.startswith(key) else 2, substance.name.lower())  # fmt: skip
        if substance.id not in rank or order < rank[substance.id]:
            rank[substance.id] = order
            found[substance.id] = substance
    ordered = sorted(found.values(), key=lambda s: rank[s.id])
    return SearchResult(
        tuple(_substance_hit(s) for s in ordered[:MAX_HITS]), truncated=len(ordered) > MAX_HITS
    )


def by_similarity(
    session: Session, analyser: Analyser, smiles: str, threshold: float
) -> SearchResult:
    """References and cluster representatives at or above a Tanimoto threshold (Morgan r2,
    the fingerprint the analyser indexes), most similar first."""
    try:
        query = fingerprint(standardise(parse(smiles)), analyser.spec)
    except InvalidStructureError as error:
        return SearchResult(error=f"Not a valid SMILES: {error.reason}.")
    hits: list[Hit] = []
    references = analyser.index.threshold(query, threshold)
    substances = {
        s.inchikey: s
        for s in session.scalars(
            select(Substance).where(Substance.inchikey.in_([h.key for h in references[:500]]))
        )
    }
    hits += [
        _substance_hit(substances[h.key], h.similarity)
        for h in references[:500]
        if h.key in substances
    ]
    clusters = session.scalars(
        select(Cluster)
        .where(Cluster.fingerprint_spec == analyser.spec.key)
        .order_by(Cluster.id.desc())
        .limit(MAX_CLUSTERS_SCANNED)
    )
    for cluster in clusters:
        similarity = tanimoto(query, cluster.fingerprint)
        if similarity >= threshold:
            hits.append(_cluster_hit(cluster, similarity))
    hits.sort(key=lambda hit: hit.similarity or 0.0, reverse=True)
    return SearchResult(tuple(hits[:MAX_HITS]), truncated=len(hits) > MAX_HITS)


_MOLS: dict[int, dict[str, Mol]] = {}
_MOLS_LOCK = threading.Lock()


def _reference_mols(analyser: Analyser) -> dict[str, Mol]:
    """The references as molecules, parsed once per analyser (one per reference library)."""
    with _MOLS_LOCK:
        mols = _MOLS.get(id(analyser))
        if mols is None:
            mols = {}
            for key, reference in analyser.references.items():
                try:
                    mols[key] = parse(reference.smiles)
                except InvalidStructureError:
                    continue
            _MOLS.clear()
            _MOLS[id(analyser)] = mols
        return mols


def by_substructure(session: Session, analyser: Analyser, smarts: str) -> SearchResult:
    """References and cluster representatives that contain the SMARTS pattern."""
    smarts = smarts.strip()
    if not smarts:
        return SearchResult(error="Type a SMARTS pattern, e.g. c1ccc2[nH]ccc2c1 for an indole.")
    if len(smarts) > MAX_SMARTS_LENGTH:
        return SearchResult(error=f"SMARTS longer than {MAX_SMARTS_LENGTH} characters.")
    with rdkit_messages():
        pattern = Chem.MolFromSmarts(smarts)
    if pattern is None:
        return SearchResult(error="Not a valid SMARTS pattern.")
    matched = [
        key for key, mol in _reference_mols(analyser).items() if mol.HasSubstructMatch(pattern)
    ]
    substances = {
        s.inchikey: s
        for chunk in _chunks(matched)
        for s in session.scalars(select(Substance).where(Substance.inchikey.in_(chunk)))
    }
    # Clusters first: unidentified structures are what an officer is usually searching for.
    hits: list[Hit] = []
    for cluster in session.scalars(
        select(Cluster).order_by(Cluster.id.desc()).limit(MAX_CLUSTERS_SCANNED)
    ):
        try:
            mol = parse(cluster.representative_smiles)
        except InvalidStructureError:
            continue
        if mol.HasSubstructMatch(pattern):
            hits.append(_cluster_hit(cluster))
    hits += sorted(
        (_substance_hit(s) for s in substances.values()), key=lambda hit: hit.name.lower()
    )
    return SearchResult(tuple(hits[:MAX_HITS]), truncated=len(hits) > MAX_HITS)


def _chunks(keys: list[str], size: int = 500) -> list[list[str]]:
    return [keys[start : start + size] for start in range(0, len(keys), size)]
