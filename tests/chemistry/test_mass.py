"""Accurate-mass screening against reference formulas."""

import pytest
from rdkit import Chem
from rdkit.Chem import rdMolDescriptors

from chemistry.mass import ELECTRON_MASS, PROTON_MASS, MassReference, formula_mass, screen

KETAMINE = MassReference("ketamine", "YQEZLKZALYSWHR-UHFFFAOYSA-N", "C13H16ClNO", 237.092042)
TWO_FDCK = MassReference("2-FDCK", "KZBRTCMTOSSIRR-UHFFFAOYSA-N", "C13H16FNO", 221.121592)
THREE_FDCK = MassReference("3-FDCK", "QOIEPDHDXDGHAH-UHFFFAOYSA-N", "C13H16FNO", 221.121592)


def test_the_protonated_ion_of_a_reference_is_found() -> None:
    found = screen(221.121592 + PROTON_MASS, [KETAMINE, TWO_FDCK])
    assert [c.name for c in found] == ["2-FDCK"]
    assert found[0].ppm_error == pytest.approx(0, abs=1e-6)


def test_isomers_come_out_together_and_ties_go_by_name() -> None:
    found = screen(222.12887, [THREE_FDCK, KETAMINE, TWO_FDCK])
    assert [c.name for c in found] == ["2-FDCK", "3-FDCK"]


def test_candidates_are_ranked_by_absolute_ppm_error() -> None:
    near = MassReference("near", "A", "X", 300.0)
    far = MassReference("far", "B", "Y", 300.0012)
    found = screen(300.0005 + PROTON_MASS, [far, near], tolerance_ppm=10)
    assert [c.name for c in found] == ["near", "far"]
    assert abs(found[0].ppm_error) < abs(found[1].ppm_error)


def test_a_mass_outside_the_tolerance_is_not_a_candidate() -> None:
    mz = 221.121592 + PROTON_MASS
    assert screen(mz * (1 + 6e-6), [TWO_FDCK], tolerance_ppm=5) == []
    assert screen(mz * (1 + 4e-6), [TWO_FDCK], tolerance_ppm=5) != []


def test_a_quaternary_cation_is_screened_as_m_plus() -> None:
    cation = Chem.MolFromSmiles("C[N+](C)(C)CCOC(C)=O")  # acetylcholine
    mass = rdMolDescriptors.CalcExactMolWt(cation)
    reference = MassReference("acetylcholine", "OIPILFWXSMYKGL-UHFFFAOYSA-N", "C7H16NO2+", mass)
    assert [c.name for c in screen(mass, [reference], adduct="[M]+")] == ["acetylcholine"]
    neutral = MassReference("neutral", "X", "C7H16NO2", mass + ELECTRON_MASS)
    assert [c.name for c in screen(mass, [neutral], adduct="[M]+")] == ["neutral"]


def test_formula_mass_equals_rdkits_monoisotopic_mass() -> None:
    flubromazolam = Chem.MolFromSmiles("Cc1nnc2n1-c1ccc(Br)cc1C(c1ccccc1F)=NC2")
    assert formula_mass("C17H12N4FBr") == pytest.approx(
        rdMolDescriptors.CalcExactMolWt(flubromazolam), abs=1e-6
    )
    with pytest.raises(ValueError, match="formula"):
        formula_mass("not a formula")
