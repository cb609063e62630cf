"""Effect group: the chemical group's implied effect mixed with a k-NN vote of references."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin

from chemistry.vocabulary import ChemicalGroup, EffectGroup

G = ChemicalGroup

# The effect group that a chemical group implies when the class is pharmacologically uniform
# (UNODC effect groups). Phenethylamines (stimulants and hallucinogens), tropanes (cocaine and
# anticholinergics), plant-based and other are mixed: their effect comes from the neighbours.
GROUP_EFFECT: dict[ChemicalGroup, EffectGroup] = {
    G.FENTANYL_ANALOGUE: EffectGroup.OPIOID,
    G.NITAZENE: EffectGroup.OPIOID,
    G.OTHER_OPIOID: EffectGroup.OPIOID,
    G.SYNTHETIC_CANNABINOID: EffectGroup.SYNTHETIC_CANNABINOID_RECEPTOR_AGONIST,
    G.BENZODIAZEPINE: EffectGroup.SEDATIVE_HYPNOTIC,
    G.ARYLCYCLOHEXYLAMINE: EffectGroup.DISSOCIATIVE,
    G.LYSERGAMIDE: EffectGroup.CLASSIC_HALLUCINOGEN,
    G.TRYPTAMINE: EffectGroup.CLASSIC_HALLUCINOGEN,
    G.CATHINONE: EffectGroup.STIMULANT,
    G.AMINOINDANE: EffectGroup.STIMULANT,
    G.PHENIDATE: EffectGroup.STIMULANT,
    G.PIPERAZINE: EffectGroup.STIMULANT,
}
# Weight of the group's implied effect against the neighbours' vote. Above 0.5 so that the
# structural class wins a straight disagreement with the neighbours (a new fentanyl whose
# nearest references happen to be benzimidazoles is still an opioid), below 1 so that the
# neighbours' agreement or disagreement shows in the confidence.
GROUP_WEIGHT = 0.6


class TanimotoNeighboursClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """k nearest neighbours by Tanimoto similarity (1 - Jaccard distance) on packed bits.

    Equivalent to KNeighborsClassifier(metric="jaccard", weights=lambda d: 1 - d) on the
    unpacked boolean fingerprints, but computed on packed words with a popcount, about 50x
    faster per query (4.6 ms vs 0.1 ms over 1,500 references). X is an (n, n_bytes) uint8
    array of packed fingerprints. Neighbours below min_similarity do not vote; a row with no
    voter gets all-zero probabilities. Ties in similarity go to the earlier training row.
    """

    def __init__(self, n_neighbors: int = 5, min_similarity: float = 0.0) -> None:
        self.n_neighbors = n_neighbors
        self.min_similarity = min_similarity

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> TanimotoNeighboursClassifier:  # noqa: N803
        packed = np.ascontiguousarray(X, dtype=np.uint8)
        labels = np.asarray(y)
        if packed.ndim != 2 or packed.shape[1] % 8 or len(packed) != len(labels):
            raise ValueError("X must be (n, n_bytes) packed fingerprints with n_bytes % 8 == 0")
        self.words_ = packed.view("<u8")
        self.popcounts_ = np.bitwise_count(self.words_).sum(axis=1).astype(np.int64)
        self.classes_, self.y_ = np.unique(labels, return_inverse=True)
        self.n_features_in_ = packed.shape[1]
        return self

    def kneighbors(
        self,
        X: npt.ArrayLike,  # noqa: N803
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
        """Similarities and training-row indices of the n_neighbors nearest, best first."""
        words = np.ascontiguousarray(X, dtype=np.uint8).view("<u8")
        k = min(self.n_neighbors, len(self.words_))
        sims = np.zeros((len(words), k))
        rows = np.zeros((len(words), k), dtype=np.intp)
        for i, query in enumerate(words):
            common = np.bitwise_count(self.words_ & query).sum(axis=1).astype(np.int64)
            union = self.popcounts_ + int(np.bitwise_count(query).sum()) - common
            row_sims = np.divide(common, union, out=np.zeros(len(union)), where=union > 0)
            order = np.argsort(-row_sims, kind="stable")[:k]
            sims[i], rows[i] = row_sims[order], order
        return sims, rows

    def predict_proba(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:  # noqa: N803
        sims, rows = self.kneighbors(X)
        votes = np.where(sims >= self.min_similarity, sims, 0.0)
        proba = np.zeros((len(sims), len(self.classes_)))
        for i in range(len(sims)):
            proba[i] = np.bincount(self.y_[rows[i]], weights=votes[i], minlength=len(self.classes_))
        totals = proba.sum(axis=1, keepdims=True)
        return np.divide(proba, totals, out=np.zeros_like(proba), where=totals > 0)

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.generic]:  # noqa: N803
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


@dataclass(frozen=True, slots=True)
class EffectPrediction:
    effect_group: EffectGroup
    confidence: float  # probability of effect_group in [0, 1]; 0 when there was no evidence


def combine_effect(
    group: ChemicalGroup, classes: npt.NDArray[np.generic], proba: npt.NDArray[np.float64]
) -> EffectPrediction:
    """Mix the group's implied effect (weight GROUP_WEIGHT) with the neighbours' vote.

    proba is one row of TanimotoNeighboursClassifier.predict_proba over `classes`. With
    neither a group effect nor any voting neighbour the answer is not_assigned, confidence 0.
    """
    scores: dict[EffectGroup, float] = {}
    has_vote = float(proba.sum()) > 0
    implied = GROUP_EFFECT.get(group)
    neighbour_weight = 1.0 - GROUP_WEIGHT if implied is not None else 1.0
    if has_vote:
        for label, p in zip(classes, proba, strict=True):
            effect = EffectGroup(str(label))
            scores[effect] = scores.get(effect, 0.0) + neighbour_weight * float(p)
    if implied is not None:
        scores[implied] = scores.get(implied, 0.0) + (GROUP_WEIGHT if has_vote else 1.0)
    if not scores:
        return EffectPrediction(EffectGroup.NOT_ASSIGNED, 0.0)
    best = min(scores, key=lambda effect: (-scores[effect], effect.value))
    return EffectPrediction(best, min(1.0, max(0.0, scores[best])))
