"""The whole pipeline for one structure, and its public contract."""

import pytest

from chemistry.analysis import Analyser, Reference
from chemistry.errors import InvalidStructureError
from chemistry.structures import identify_text
from chemistry.vocabulary import Category, ChemicalGroup, ControlStatus, EffectGroup, PotencyTier

CONTRACT_KEYS = {
    "input",
    "smiles",
    "inchikey",
    "formula",
    "exact_mass",
    "chemical_group",
    "effect_group",
    "effect_confidence",
    "match",
    "nearest",
    "analogue_of",
    "generic_definitions",
    "error",
}


def _reference(
    name: str,
    smiles: str,
    group: ChemicalGroup,
    effect: EffectGroup,
    *,
    control: ControlStatus = ControlStatus.NONE,
    potency: PotencyTier = PotencyTier.UNKNOWN,
    category: Category = Category.NPS,
) -> Reference:
    return Reference(
        name, identify_text(smiles).inchikey, smiles, group, effect, control, potency, category
    )


FENTANYL = "CCC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1"
REFERENCES = [
    _reference(
        "fentanyl",
        FENTANYL,
        ChemicalGroup.FENTANYL_ANALOGUE,
        EffectGroup.OPIOID,
        control=ControlStatus.C1961_I,
        potency=PotencyTier.VERY_HIGH,
        category=Category.CONTROLLED,
    ),
    _reference(
        "acetylfentanyl",
        "CC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1",
        ChemicalGroup.FENTANYL_ANALOGUE,
        EffectGroup.OPIOID,
        control=ControlStatus.C1961_I,
        potency=PotencyTier.HIGH,
    ),
    _reference(
        "butyrfentanyl (uncontrolled here)",
        "CCCC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1",
        ChemicalGroup.FENTANYL_ANALOGUE,
        EffectGroup.OPIOID,
        potency=PotencyTier.HIGH,
    ),
    _reference(
        "mephedrone",
        "CNC(C)C(=O)c1ccc(C)cc1",
        ChemicalGroup.CATHINONE,
        EffectGroup.STIMULANT,
        control=ControlStatus.C1971_II,
    ),
    _reference(
        "MDMA",
        "CNC(C)Cc1ccc2OCOc2c1",
        ChemicalGroup.PHENETHYLAMINE,
        EffectGroup.STIMULANT,
        control=ControlStatus.C1971_I,
    ),
    _reference(
        "2C-B",
        "NCCc1cc(OC)c(Br)cc1OC",
        ChemicalGroup.PHENETHYLAMINE,
        EffectGroup.CLASSIC_HALLUCINOGEN,
        control=ControlStatus.C1971_II,
    ),
    _reference(
        "phenacetin",
        "CCOc1ccc(NC(C)=O)cc1",
        ChemicalGroup.OTHER,
        EffectGroup.NOT_ASSIGNED,
        category=Category.CUTTING_AGENT,
    ),
]
ANALYSER = Analyser(REFERENCES)


def test_to_dict_has_exactly_the_contract_keys() -> None:
    assert set(ANALYSER.analyse(FENTANYL).to_dict()) == CONTRACT_KEYS
    assert set(ANALYSER.analyse("not a smiles").to_dict()) == CONTRACT_KEYS


def test_a_salt_of_a_reference_is_matched_and_keeps_its_recorded_effect() -> None:
    result = ANALYSER.analyse(FENTANYL + ".Cl").to_dict()
    assert result["match"] == {"name": "fentanyl", "inchikey": REFERENCES[0].inchikey}
    assert result["input"] == FENTANYL + ".Cl"
    assert result["smiles"] == identify_text(FENTANYL).smiles
    assert result["chemical_group"] == "fentanyl_analogue"
    assert (result["effect_group"], result["effect_confidence"]) == ("opioid", 1.0)
    assert result["nearest"][0] == {
        "name": "fentanyl",
        "inchikey": REFERENCES[0].inchikey,
        "similarity": 1.0,
    }


def test_a_new_fentanyl_is_flagged_as_analogue_of_controlled_and_potent_references() -> None:
    para_fluoro = "CCC(=O)N(c1ccc(F)cc1)C1CCN(CCc2ccccc2)CC1"
    result = ANALYSER.analyse(para_fluoro).to_dict()
    assert result["match"] is None
    assert result["chemical_group"] == "fentanyl_analogue"
    assert result["effect_group"] == "opioid"
    assert 0.6 <= result["effect_confidence"] <= 1
    assert result["analogue_of"][0] == "fentanyl"
    assert "butyrfentanyl (uncontrolled here)" not in result["analogue_of"]  # neither flag
    sims = [n["similarity"] for n in result["nearest"]]
    assert sims == sorted(sims, reverse=True)
    assert {d["id"] for d in result["generic_definitions"]} == {"us-fentanyl-related-substances"}


def test_the_exact_match_is_not_its_own_analogue() -> None:
    assert "fentanyl" not in ANALYSER.analyse(FENTANYL).to_dict()["analogue_of"]
    assert "acetylfentanyl" in ANALYSER.analyse(FENTANYL).to_dict()["analogue_of"]


def test_cutting_agents_never_flag_analogues() -> None:
    paracetamol = ANALYSER.analyse("CC(=O)Nc1ccc(O)cc1").to_dict()
    assert paracetamol["nearest"][0]["name"] == "phenacetin"
    assert paracetamol["analogue_of"] == []
    assert paracetamol["chemical_group"] == "other"


def test_an_invalid_input_gives_the_reason_and_empty_fields() -> None:
    result = ANALYSER.analyse("C1CC(").to_dict()
    assert result["error"]
    assert result["input"] == "C1CC("
    assert result["smiles"] is result["match"] is result["chemical_group"] is None
    assert result["nearest"] == result["analogue_of"] == result["generic_definitions"] == []


def test_the_error_can_be_raised_instead_for_the_api() -> None:
    with pytest.raises(InvalidStructureError):
        ANALYSER.analyse_or_raise("C1CC(")


def test_inchi_input_is_analysed_like_smiles() -> None:
    inchi = identify_text(FENTANYL).inchi
    assert ANALYSER.analyse(inchi, "inchi").to_dict()["match"]["name"] == "fentanyl"


def test_the_query_fingerprint_is_exposed_for_clustering_but_not_in_the_contract() -> None:
    result = ANALYSER.analyse(FENTANYL)
    assert result.fingerprint is not None
    assert len(result.fingerprint) == ANALYSER.spec.n_bytes
    assert "fingerprint" not in result.to_dict()


def test_an_empty_reference_set_still_identifies_and_classifies() -> None:
    result = Analyser([]).analyse("CNC(C)C(=O)c1ccc(C)cc1").to_dict()
    assert result["chemical_group"] == "cathinone"
    assert result["effect_group"] == "stimulant"
    assert result["nearest"] == []
