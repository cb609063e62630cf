"""Parse, standardise, identify: one substance, one identity."""

import pytest

from chemistry.errors import InvalidStructureError
from chemistry.structures import identify_text, parse

MDMA = "CNC(C)Cc1ccc2OCOc2c1"


@pytest.mark.parametrize(
    "form",
    [
        "CNC(C)Cc1ccc2OCOc2c1.Cl",  # hydrochloride
        "C[NH2+]C(C)Cc1ccc2OCOc2c1.[Cl-]",  # ion pair as written by some labs
        "C[NH2+]C(C)Cc1ccc2OCOc2c1",  # the protonated cation alone
        "CC(Cc1ccc2c(c1)OCO2)NC",  # another valid SMILES
        "CNC(C)CC1=CC2=C(OCO2)C=C1",  # Kekule form
        "CNC(C)Cc1ccc2OCOc2c1.O.O",  # hydrate
        "CNC(C)Cc1ccc2OCOc2c1.OC(=O)C(O)C(O)C(=O)O",  # tartrate
    ],
)
def test_salt_charged_and_rewritten_forms_share_one_inchikey(form: str) -> None:
    assert identify_text(form).inchikey == identify_text(MDMA).inchikey


def test_sodium_salt_of_an_acid_gives_the_free_acid() -> None:
    ghb_sodium = "OCCCC(=O)[O-].[Na+]"
    assert identify_text(ghb_sodium).inchikey == identify_text("OCCCC(=O)O").inchikey


def test_inchi_input_gives_the_same_identity_as_smiles() -> None:
    inchi = identify_text(MDMA).inchi
    assert identify_text(inchi, "inchi").inchikey == identify_text(MDMA).inchikey


def test_identity_reports_formula_and_monoisotopic_mass() -> None:
    identity = identify_text(MDMA)
    assert identity.formula == "C11H15NO2"
    assert identity.exact_mass == pytest.approx(193.1103, abs=1e-3)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("C1CC", "ring"),
        ("C(C)(C)(C)(C)C", "valence"),
        ("x" * 2000, "longer than"),
        ("C" * 200, "heavy atoms"),
        ("CC O", "whitespace"),
    ],
)
def test_invalid_input_is_rejected_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(InvalidStructureError) as caught:
        parse(text)
    assert fragment in caught.value.reason.lower()
