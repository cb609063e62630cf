"""Chemical group rules, the effect estimator, and agreement with the reference library."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from chemistry.classification import (
    GROUP_WEIGHT,
    TanimotoNeighboursClassifier,
    chemical_group,
    combine_effect,
    matching_groups,
)
from chemistry.fingerprints import fingerprint, to_array, to_bits
from chemistry.structures import parse, standardise
from chemistry.vocabulary import ChemicalGroup, EffectGroup
from tests.chemistry.named import GROUP_MEMBERS, NOT_IN_ANY_GROUP

MEMBERS = [
    (group, name, smiles)
    for group, members in GROUP_MEMBERS.items()
    for name, smiles in members.items()
]


@pytest.mark.parametrize(("group", "name", "smiles"), MEMBERS, ids=[m[1] for m in MEMBERS])
def test_each_group_rule_claims_its_members(group: str, name: str, smiles: str) -> None:
    found = chemical_group(standardise(parse(smiles)))
    assert found.group == ChemicalGroup(group), (name, found, matching_groups(parse(smiles)))
    assert found.rule


@pytest.mark.parametrize("name", sorted(NOT_IN_ANY_GROUP))
def test_medicines_and_near_misses_fall_in_no_group(name: str) -> None:
    found = chemical_group(standardise(parse(NOT_IN_ANY_GROUP[name])))
    assert found.group is ChemicalGroup.OTHER
    assert name.startswith(("diphenidine", "methiopropamine")) or found.rule == ""


@pytest.mark.parametrize(
    ("smiles", "winner", "loser"),
    [
        (GROUP_MEMBERS["fentanyl_analogue"]["fentanyl"], "fentanyl_analogue", "phenethylamine"),
        (GROUP_MEMBERS["other_opioid"]["MT-45"], "other_opioid", "phenethylamine"),
        ("Clc1cccc(N2CCN(CCc3ccccc3)CC2)c1", "piperazine", "phenethylamine"),  # 3C-PEP
        (GROUP_MEMBERS["synthetic_cannabinoid"]["HU-210"], "synthetic_cannabinoid", "plant_based"),
    ],
)
def test_priority_order_resolves_overlapping_rules(smiles: str, winner: str, loser: str) -> None:
    groups = [m.group.value for m in matching_groups(standardise(parse(smiles)))]
    assert groups[0] == winner
    assert loser in groups[1:]


def test_rule_groups_agree_with_the_reference_library() -> None:
    reference_standards = pytest.importorskip("reference_standards")
    library = reference_standards.load_library()
    if len(library.records) < 200:
        pytest.skip(f"reference library has {len(library.records)} records (< 200)")
    disagreements = []
    for record in library.records:
        found = chemical_group(parse(record.identity.smiles))
        if found.group is not record.chemical_group:
            disagreements.append(
                f"{record.file}: {record.name}: library {record.chemical_group}, "
                f"rules {found.group} ({found.rule or 'no rule'})"
            )
    agreement = 1 - len(disagreements) / len(library.records)
    print(f"\nchemical group agreement {agreement:.1%} over {len(library.records)} records")
    print("\n".join(disagreements))
    assert agreement >= 0.98, "\n".join(disagreements)


def _packed(smiles: list[str]) -> np.ndarray:
    return to_array([fingerprint(standardise(parse(s))) for s in smiles])


def test_tanimoto_neighbours_agree_with_sklearn_jaccard_neighbours() -> None:
    train = [s for _, _, s in MEMBERS]
    labels = [g for g, _, _ in MEMBERS]
    queries = [s for s in NOT_IN_ANY_GROUP.values()] + train[::5]
    ours = TanimotoNeighboursClassifier(n_neighbors=1).fit(_packed(train), labels)
    theirs = KNeighborsClassifier(n_neighbors=1, metric="jaccard", algorithm="brute").fit(
        to_bits(_packed(train)), labels
    )
    sims, _ = ours.kneighbors(_packed(queries))
    distances, _ = theirs.kneighbors(to_bits(_packed(queries)))
    assert sims[:, 0] == pytest.approx(1 - distances[:, 0])


def test_estimator_follows_sklearn_conventions() -> None:
    estimator = TanimotoNeighboursClassifier(n_neighbors=3, min_similarity=0.2)
    assert estimator.get_params() == {"n_neighbors": 3, "min_similarity": 0.2}
    fitted = estimator.fit(_packed(["CC(N)Cc1ccccc1", "CNC(C)Cc1ccccc1"]), ["a", "b"])
    assert fitted is estimator
    assert list(estimator.classes_) == ["a", "b"]


def test_neighbours_below_min_similarity_do_not_vote() -> None:
    estimator = TanimotoNeighboursClassifier(n_neighbors=2, min_similarity=0.9)
    estimator.fit(_packed(["CC(N)Cc1ccccc1", "CCCCCCCCCC"]), ["stimulant", "not_assigned"])
    proba = estimator.predict_proba(_packed(["c1ccc2ccccc2c1"]))
    assert proba.sum() == 0


def test_group_effect_outweighs_disagreeing_neighbours() -> None:
    classes = np.array(["stimulant"])
    prediction = combine_effect(ChemicalGroup.FENTANYL_ANALOGUE, classes, np.array([1.0]))
    assert prediction.effect_group is EffectGroup.OPIOID
    assert prediction.confidence == pytest.approx(GROUP_WEIGHT)


def test_agreeing_neighbours_raise_the_confidence() -> None:
    agree = combine_effect(ChemicalGroup.CATHINONE, np.array(["stimulant"]), np.array([1.0]))
    assert agree.effect_group is EffectGroup.STIMULANT
    assert agree.confidence == pytest.approx(1.0)


def test_mixed_groups_take_the_neighbours_vote() -> None:
    classes = np.array(["classic_hallucinogen", "stimulant"])
    prediction = combine_effect(ChemicalGroup.PHENETHYLAMINE, classes, np.array([0.7, 0.3]))
    assert prediction.effect_group is EffectGroup.CLASSIC_HALLUCINOGEN
    assert prediction.confidence == pytest.approx(0.7)


def test_no_evidence_is_not_assigned_with_zero_confidence() -> None:
    prediction = combine_effect(ChemicalGroup.OTHER, np.array(["stimulant"]), np.array([0.0]))
    assert prediction.effect_group is EffectGroup.NOT_ASSIGNED
    assert prediction.confidence == 0
