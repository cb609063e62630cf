"""Clustering: families form from analogues, deterministically, without a distance matrix."""

from chemistry.clustering import assign, recluster
from chemistry.fingerprints import fingerprint
from chemistry.similarity import SimilarityIndex
from chemistry.structures import parse, standardise

FAMILIES = {
    "fentanyl": [
        "CCC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1",
        "CC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1",
        "CCCC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1",
        "CCC(=O)N(c1ccc(F)cc1)C1CCN(CCc2ccccc2)CC1",
    ],
    "cathinone": [
        "CNC(C)C(=O)c1ccc(C)cc1",
        "CCNC(C)C(=O)c1ccc(C)cc1",
        "CNC(C)C(=O)c1ccc(Cl)cc1",
        "CNC(CC)C(=O)c1ccc(C)cc1",
    ],
    "nitazene": [
        "CCN(CC)CCn1c(Cc2ccc(OC(C)C)cc2)nc2cc([N+](=O)[O-])ccc21",
        "CCN(CC)CCn1c(Cc2ccc(OCC)cc2)nc2cc([N+](=O)[O-])ccc21",
        "CCN(CC)CCn1c(Cc2ccc(OCCC)cc2)nc2cc([N+](=O)[O-])ccc21",
    ],
}


def _fp(smiles: str) -> bytes:
    return fingerprint(standardise(parse(smiles)))


def _interleaved() -> tuple[list[str], list[str]]:
    names, smiles = [], []
    for i in range(4):
        for family, members in FAMILIES.items():
            if i < len(members):
                names.append(family)
                smiles.append(members[i])
    return names, smiles


def test_batch_reclustering_recovers_the_families() -> None:
    names, smiles = _interleaved()
    result = recluster([_fp(s) for s in smiles], threshold=0.45)
    assert result.n_clusters == 3
    by_label: dict[int, set[str]] = {}
    for name, label in zip(names, result.labels, strict=True):
        by_label.setdefault(label, set()).add(name)
    assert all(len(families) == 1 for families in by_label.values())
    assert result.representatives == (0, 1, 2)  # first member of each family, in input order
    assert all(0.45 <= s <= 1 for s in result.similarities)


def test_reclustering_is_deterministic_for_an_input_order() -> None:
    _, smiles = _interleaved()
    fps = [_fp(s) for s in smiles]
    assert recluster(fps, threshold=0.45) == recluster(fps, threshold=0.45)


def test_a_high_threshold_makes_singletons() -> None:
    _, smiles = _interleaved()
    result = recluster([_fp(s) for s in smiles], threshold=1.0)
    assert result.n_clusters == len(smiles)


def test_a_new_structure_joins_the_most_similar_representative() -> None:
    representatives = SimilarityIndex()
    representatives.add(
        ["cluster-1", "cluster-2"], [_fp(FAMILIES["fentanyl"][0]), _fp(FAMILIES["cathinone"][0])]
    )
    hit = assign(_fp("CCC(=O)N(c1ccc(Cl)cc1)C1CCN(CCc2ccccc2)CC1"), representatives, 0.5)
    assert hit is not None
    assert hit.key == "cluster-1"


def test_an_unrelated_structure_opens_a_new_cluster() -> None:
    representatives = SimilarityIndex()
    representatives.add(["cluster-1"], [_fp(FAMILIES["fentanyl"][0])])
    assert assign(_fp("Cn1cnc2c1c(=O)n(C)c(=O)n2C"), representatives, 0.5) is None
