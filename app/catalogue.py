"""The chemistry the service runs with: an Analyser over the current reference standards and the
representatives of the detection clusters, kept in step with the database across processes."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.analysis_store import pipeline_key
from app.models import Cluster, Substance
from chemistry.analysis import Analyser, Analysis, Reference
from chemistry.clustering import DEFAULT_THRESHOLD as CLUSTER_THRESHOLD
from chemistry.clustering import assign
from chemistry.fingerprints import DEFAULT_SPEC
from chemistry.similarity import Hit, SimilarityIndex
from chemistry.vocabulary import HIGHLY_POTENT, ControlStatus, PotencyTier

_TIER_ORDER = [
    PotencyTier.EXTREME,
    PotencyTier.VERY_HIGH,
    PotencyTier.HIGH,
    PotencyTier.MODERATE,
    PotencyTier.LOW,
    PotencyTier.UNKNOWN,
]
# Another process may have reloaded the reference library; look at most this often.
VERSION_CHECK_SECONDS = 30.0
# Any fixed number naming the lock that serialises cluster creation on PostgreSQL.
CLUSTER_LOCK_KEY = 0x434C5553  # "CLUS"


def reference_of(substance: Substance) -> Reference:
    return Reference(
        name=substance.name,
        inchikey=substance.inchikey,
        smiles=substance.smiles,
        chemical_group=substance.chemical_group,
        effect_group=substance.effect_group,
        control=substance.control,
        potency_tier=substance.potency_tier,
        category=substance.category,
    )


_ANALYSERS: OrderedDict[str, Analyser] = OrderedDict()
_ANALYSERS_LOCK = threading.Lock()


def references_digest(references: list[Reference]) -> str:
    return hashlib.sha256(
        "\n".join(sorted(repr(reference) for reference in references)).encode()
    ).hexdigest()


def _shared_analyser(references: list[Reference], digest: str) -> Analyser:
    """One Analyser per distinct reference content in this process (building one takes ~1.5 s);
    catalogues of apps that share a library share it."""
    with _ANALYSERS_LOCK:
        analyser = _ANALYSERS.get(digest)
        if analyser is None:
            analyser = _ANALYSERS[digest] = Analyser(references)
            while len(_ANALYSERS) > 2:
                _ANALYSERS.popitem(last=False)
        return analyser


@dataclass(frozen=True, slots=True)
class ClusterTraits:
    """What a new cluster inherits from its representative's analysis."""

    potency_tier: PotencyTier
    potent_similarity: float
    controlled_analogue: bool


_STATE_KEY = "sentinel.clusters"


@dataclass(eq=False, slots=True)
class _TransactionClusters:
    """What one transaction knows about clusters: whether it holds the cluster lock and has read
    the committed clusters, and the clusters it opened itself (visible only to it until commit).

    Kept in `session.info` and tied to the root transaction object, so that a session used for
    several transactions (the importer, the scheduler) starts each one afresh."""

    transaction: object
    locked: bool = False
    refreshed: bool = False
    opened: list[tuple[int, bytes]] = field(default_factory=list)
    pending: SimilarityIndex = field(default_factory=lambda: SimilarityIndex(DEFAULT_SPEC))

    def open(self, cluster_id: int, fingerprint: bytes) -> None:
        self.opened.append((cluster_id, fingerprint))
        self.pending.add([_index_key(cluster_id)], [fingerprint])

    def forget_after(self, mark: int) -> None:
        """Forget the clusters opened after the first `mark` (their savepoint rolled back)."""
        if len(self.opened) > mark:
            kept = self.opened[:mark]
            self.opened, self.pending = [], SimilarityIndex(DEFAULT_SPEC)
            for cluster_id, fingerprint in kept:
                self.open(cluster_id, fingerprint)


def _index_key(cluster_id: int) -> str:
    return f"{cluster_id:012d}"  # zero-padded: key order is id order


class Catalogue:
    """Thread-safe holder of the Analyser, rebuilt when the reference library changes."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._analyser: Analyser | None = None
        self.pipeline = ""  # names the analyses the current Analyser makes (app/analysis_store)
        self._version: tuple[int, str] | None = None
        self._checked_at = 0.0
        self._substance_ids: dict[str, int] = {}
        self._clusters = SimilarityIndex(DEFAULT_SPEC)
        self._last_cluster_id = 0
        self.on_change: list[object] = []  # callables run after a rebuild (cache invalidation)

    @staticmethod
    def _current_version(session: Session) -> tuple[int, str]:
        count, latest = session.execute(
            select(func.count(), func.max(Substance.updated_at)).where(
                Substance.retired_at.is_(None)
            )
        ).one()
        return int(count), str(latest)

    def analyser(self, session: Session) -> Analyser:
        """The Analyser for the current library (rebuilt when another load changed it)."""
        # Lock order: the database transaction (SQLite's write lock) first, then self._lock.
        session.connection()
        with self._lock:
            now = time.monotonic()
            if self._analyser is not None and now - self._checked_at < VERSION_CHECK_SECONDS:
                return self._analyser
            version = self._current_version(session)
            self._checked_at = now
            if self._analyser is None or version != self._version:
                substances = list(
                    session.scalars(select(Substance).where(Substance.retired_at.is_(None)))
                )
                references = [reference_of(s) for s in substances]
                digest = references_digest(references)
                self._analyser = _shared_analyser(references, digest)
                self.pipeline = pipeline_key(digest)
                self._substance_ids = {s.inchikey: s.id for s in substances}
                self._version = version
                for callback in self.on_change:
                    callback()  # type: ignore[operator]
            return self._analyser

    def invalidate(self) -> None:
        with self._lock:
            self._checked_at = 0.0

    def substance_id(self, inchikey: str) -> int | None:
        return self._substance_ids.get(inchikey)

    def traits(self, analyser: Analyser, analysis: Analysis) -> ClusterTraits:
        """Potency and control of a new family, from the references its structure resembles."""
        assert analysis.fingerprint is not None
        near = analyser.index.threshold(analysis.fingerprint, analyser.analogue_threshold)
        tiers = [analyser.references[hit.key].potency_tier for hit in near]
        tier = min(tiers, key=_TIER_ORDER.index) if tiers else PotencyTier.UNKNOWN
        potent = [
            hit.similarity
            for hit in analyser.index.top_k(analysis.fingerprint, 50)
            if analyser.references[hit.key].potency_tier in HIGHLY_POTENT
        ]
        controlled = any(
            analyser.references[hit.key].control is not ControlStatus.NONE
            and analyser.references[hit.key].category.of_concern
            for hit in near
        )
        return ClusterTraits(tier, max(potent, default=0.0), controlled)

    @staticmethod
    def _state(session: Session) -> _TransactionClusters:
        """This session's cluster bookkeeping for its current (root) transaction."""
        transaction = session.get_transaction()
        state: _TransactionClusters | None = session.info.get(_STATE_KEY)
        if state is None or state.transaction is not transaction:
            state = session.info[_STATE_KEY] = _TransactionClusters(transaction)
        return state

    @contextlib.contextmanager
    def savepoint(self, session: Session) -> Iterator[None]:
        """`session.begin_nested()` that keeps this transaction's cluster bookkeeping true.

        If the SAVEPOINT rolls back, the clusters opened inside it are gone, and so may be the
        PostgreSQL cluster lock if it was taken inside (locks taken after a savepoint are
        released when it rolls back): they are forgotten, and the next assignment locks and
        reads again. Use it for every savepoint that may assign clusters.
        """
        state = self._state(session)
        mark = len(state.opened)
        try:
            with session.begin_nested():
                yield
        except BaseException:
            state = self._state(session)
            state.locked = state.refreshed = False
            state.forget_after(mark)
            raise

    def cluster_for(
        self, session: Session, analysis: Analysis, analyser: Analyser
    ) -> tuple[Cluster, bool]:
        """The cluster an unidentified structure joins, or a new one it opens (True).

        Joining takes no lock: it writes nothing but the detection's cluster_id. Opening a
        cluster is serialised (PostgreSQL: a transaction-scoped advisory lock; SQLite: the
        write lock every writing transaction takes at BEGIN), and decided again under that lock
        after reading the clusters committed meanwhile, so that two API processes cannot open
        twin clusters. Because openings are serialised and each commits before the lock is
        released, committed cluster ids only grow: reading those above the last one seen keeps
        the shared index complete. The read is done once per transaction, and again on taking
        the lock.
        """
        assert analysis.identity is not None
        assert analysis.fingerprint is not None
        state = self._state(session)
        if session.get_bind().dialect.name != "postgresql":
            state.locked = True  # SQLite: this write transaction holds the write lock already
        session.connection()  # the database transaction before self._lock (see analyser)
        if not state.refreshed:
            self._refresh_clusters(session, state)
            state.refreshed = True
        hit = self._nearest_cluster(state, analysis.fingerprint)
        if hit is None and not state.locked:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLUSTER_LOCK_KEY})
            state.locked = True
            self._refresh_clusters(session, state)
            hit = self._nearest_cluster(state, analysis.fingerprint)
        if hit is not None:
            cluster = session.get(Cluster, int(hit.key))
            if cluster is not None:
                return cluster, False
        with self._lock:
            traits = self.traits(analyser, analysis)
        cluster = Cluster(
            representative_smiles=analysis.identity.smiles,
            representative_inchikey=analysis.identity.inchikey,
            fingerprint=analysis.fingerprint,
            fingerprint_spec=analyser.spec.key,
            chemical_group=analysis.chemical_group,
            effect_group=analysis.effect.effect_group if analysis.effect else None,
            potency_tier=traits.potency_tier,
            potent_similarity=traits.potent_similarity,
            controlled_analogue=traits.controlled_analogue,
            nearest=[
                {"name": n.name, "inchikey": n.inchikey, "similarity": round(n.similarity, 4)}
                for n in analysis.nearest
            ],
        )
        session.add(cluster)
        session.flush()
        # Shared only once committed (a later transaction's refresh reads it); until then,
        # this transaction's.
        state.open(cluster.id, analysis.fingerprint)
        return cluster, True

    def _nearest_cluster(self, state: _TransactionClusters, fingerprint: bytes) -> Hit | None:
        """The most similar cluster at the threshold, committed or opened by this transaction
        (those are in no shared index until they are committed)."""
        with self._lock:
            hit = assign(fingerprint, self._clusters, CLUSTER_THRESHOLD)
        if len(state.pending):
            local = assign(fingerprint, state.pending, CLUSTER_THRESHOLD)
            if local is not None and (hit is None or local.similarity > hit.similarity):
                hit = local
        return hit

    def _refresh_clusters(self, session: Session, state: _TransactionClusters) -> None:
        """Add clusters committed since the last refresh to the shared index.

        Read on the request's own connection: taking a second pooled connection while holding
        the write lock (SQLite) or the cluster lock (PostgreSQL) deadlocks once every pooled
        connection belongs to a request queued behind that lock. Clusters this transaction
        opened are visible here but may still roll back, so they are left out; cluster creation
        is serialised, so every other visible cluster is committed and ids arrive in order.
        """
        with self._lock:
            last = self._last_cluster_id
        # The query runs without self._lock, which every request takes (see analyser).
        query = select(Cluster.id, Cluster.fingerprint).where(Cluster.id > last)
        if state.opened:
            query = query.where(Cluster.id.not_in([cluster_id for cluster_id, _ in state.opened]))
        rows = session.execute(query.order_by(Cluster.id)).all()
        with self._lock:
            rows = [row for row in rows if row.id > self._last_cluster_id]  # not added meanwhile
            if rows:
                self._clusters.add(
                    [_index_key(row.id) for row in rows], [row.fingerprint for row in rows]
                )
                self._last_cluster_id = rows[-1].id
