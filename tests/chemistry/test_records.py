"""An Analysis survives its JSON record exactly, and a record that cannot be current is refused."""

from __future__ import annotations

import json

import pytest

from chemistry.analysis import Analyser
from chemistry.records import RECORD_VERSION, from_record, to_record
from reference_standards import load_library

# A reference standard (match, generic definition), two NPS analogues (nearest, analogue
# flags, no match), a salt, an InChI, and something unrelated to every reference.
INPUTS = [
    ("smiles", "CCC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1"),
    ("smiles", "CCC(=O)N(c1ccc(F)cc1)C1CCN(CCc2cccs2)CC1"),
    ("smiles", "CCN(CC)CCn1c(Cc2ccc(OCC3CC3)cc2)nc2cc([N+](=O)[O-])ccc21"),
    ("smiles", "CNC(C)Cc1ccc2c(c1)OCO2.Cl"),
    ("inchi", "InChI=1S/C9H13N/c1-8(10)7-9-5-3-2-4-6-9/h2-6,8H,7,10H2,1H3"),
    ("smiles", "OCC(O)CO"),
]


@pytest.fixture(scope="module")
def analyser() -> Analyser:
    library = load_library()
    return Analyser(library.references())


@pytest.mark.parametrize(("fmt", "text"), INPUTS)
def test_a_record_gives_back_the_same_analysis(analyser: Analyser, fmt: str, text: str) -> None:
    analysis = analyser.analyse_or_raise(text, fmt)
    record = json.loads(json.dumps(to_record(analysis)))  # as stored: through JSON text
    restored = from_record(record, analyser.references)
    assert restored == analysis
    assert restored is not None
    assert restored.to_dict() == analysis.to_dict()


def test_the_inputs_cover_what_a_record_must_carry(analyser: Analyser) -> None:
    analyses = [analyser.analyse_or_raise(text, fmt) for fmt, text in INPUTS]
    assert any(a.match is not None for a in analyses)
    assert any(a.match is None and a.analogue_of for a in analyses)
    assert any(a.generic_definitions for a in analyses)
    assert all(a.fingerprint for a in analyses)


def test_a_record_whose_reference_is_gone_or_of_another_version_is_refused(
    analyser: Analyser,
) -> None:
    fentanyl = analyser.analyse_or_raise(INPUTS[0][1], "smiles")
    assert fentanyl.match is not None
    record = to_record(fentanyl)
    without = {k: v for k, v in analyser.references.items() if k != fentanyl.match.inchikey}
    assert from_record(record, without) is None
    assert from_record(record | {"v": RECORD_VERSION + 1}, analyser.references) is None
