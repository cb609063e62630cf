"""Hostile structure strings straight into chemistry.structures: each is refused with a reason
(InvalidStructureError) or identified, quickly; no other exception ever escapes."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chemistry.errors import InvalidStructureError
from chemistry.structures import (
    MAX_DEGREE,
    MAX_RINGS,
    Identity,
    identify_text,
)
from tests.chemistry.hostile import (
    GRAPHENE_FLAKE_WITH_DUMMIES,
    GRAPHENE_OXIDE_FLAKE,
    Hostile,
    corpus,
    graphene,
    inchi_like,
    mutated_smiles,
    smiles_like,
)

# A safety bound, not a speed target: the slowest corpus entry takes about 0.1 s.
SECONDS_PER_INPUT = 2.0

CORPUS = corpus()


def refused_or_identified(text: str, fmt: str) -> str | Identity:
    """The reason an input is refused, or its identity; any other exception fails the test."""
    try:
        identity = identify_text(text, fmt)
    except InvalidStructureError as error:
        reason = error.reason
    else:
        assert isinstance(identity, Identity)
        assert identity.inchi.startswith("InChI=")
        assert len(identity.inchikey) == 27
        return identity
    assert reason.strip(), f"no reason given for {text!r}"
    return reason


@pytest.mark.parametrize("entry", CORPUS, ids=[entry.id for entry in CORPUS])
def test_each_hostile_input_is_refused_with_a_reason_or_identified(entry: Hostile) -> None:
    started = time.perf_counter()
    refused_or_identified(entry.text, entry.fmt)
    assert time.perf_counter() - started < SECONDS_PER_INPUT


@pytest.mark.parametrize(
    ("text", "fmt", "fragment"),
    [
        ("\u0421\u0421O", "smiles", "printable ASCII: U+0421 at position 1"),
        ("CC\u039f", "smiles", "U+039F"),
        ("\ufeffCCO", "smiles", "U+FEFF"),
        ("CCO\x00", "smiles", "U+0000 at position 4"),
        ("C\ud800C", "smiles", "U+D800"),
        ("InChI=1S/C2H6O/c1-2-3\x00/h3H,2H2,1H3", "inchi", "U+0000"),
    ],
)
def test_lookalike_and_control_characters_are_refused_not_misread(
    text: str, fmt: str, fragment: str
) -> None:
    """RDKit read the first three as water, ethane and ethanol, and the InChI cut at its NUL
    byte as another structure: a wrong identity is worse than a refusal."""
    with pytest.raises(InvalidStructureError) as caught:
        identify_text(text, fmt)
    assert fragment in caught.value.reason


@pytest.mark.parametrize(
    "inchi", ["InChI=1S/32766H2/h32766*1H", "InChI=1S/32766CH4/h32766*1H4", "InChI=1S/151C"]
)
def test_an_inchi_formula_too_large_is_refused_before_rdkit_builds_it(inchi: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidStructureError) as caught:
        identify_text(inchi, "inchi")
    assert "InChI formula has" in caught.value.reason
    assert time.perf_counter() - started < 0.5  # RDKit took 6 s to build the first two


def test_too_many_rings_are_refused_before_aromaticity_perception() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidStructureError) as caught:
        identify_text(GRAPHENE_OXIDE_FLAKE)
    assert caught.value.reason == f"structure has 55 rings (limit {MAX_RINGS})"
    assert time.perf_counter() - started < 0.5  # 95 s without the limit


def test_structures_at_the_ring_limit_are_identified_and_one_ring_more_is_refused() -> None:
    assert isinstance(refused_or_identified("C1CCC(CC1)" * MAX_RINGS, "smiles"), Identity)
    flake = graphene(5, 10)  # 16 fused aromatic rings: the costly kind, at the limit
    started = time.perf_counter()
    assert isinstance(refused_or_identified(flake, "smiles"), Identity)
    assert time.perf_counter() - started < SECONDS_PER_INPUT
    with pytest.raises(InvalidStructureError) as caught:
        identify_text("C1CCC(CC1)" * (MAX_RINGS + 1))
    assert caught.value.reason == f"structure has {MAX_RINGS + 1} rings (limit {MAX_RINGS})"


def test_wildcard_atoms_are_refused_with_a_reason() -> None:
    with pytest.raises(InvalidStructureError) as caught:
        identify_text(GRAPHENE_FLAKE_WITH_DUMMIES)
    assert "wildcard" in caught.value.reason


def test_an_atom_with_more_bonds_than_rdkit_can_count_is_refused() -> None:
    with pytest.raises(InvalidStructureError) as caught:
        identify_text("[Fe]" + "(C)" * 149)  # RDKit raised RuntimeError past 127 bonds
    assert caught.value.reason == f"atom 1 (Fe) has 149 bonds (limit {MAX_DEGREE})"


# ---- property-based: random strings (strategies in tests/chemistry/hostile.py) ---------------

PROPERTY = settings(
    max_examples=300,
    deadline=None,  # the time bound is asserted by the test, with its own margin
    derandomize=True,  # the same examples on every run: CI stays reproducible
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(text=st.text(max_size=300), fmt=st.sampled_from(["smiles", "inchi"]))
def test_any_unicode_text_is_refused_or_identified(text: str, fmt: str) -> None:
    refused_or_identified(text, fmt)


@PROPERTY
@given(text=smiles_like)
def test_any_string_of_smiles_tokens_is_refused_or_identified(text: str) -> None:
    started = time.perf_counter()
    refused_or_identified(text, "smiles")
    assert time.perf_counter() - started < SECONDS_PER_INPUT


@PROPERTY
@given(text=mutated_smiles())
def test_any_mutated_nps_smiles_is_refused_or_identified(text: str) -> None:
    refused_or_identified(text, "smiles")


@PROPERTY
@given(text=inchi_like)
def test_any_string_of_inchi_layers_is_refused_or_identified(text: str) -> None:
    started = time.perf_counter()
    refused_or_identified(text, "inchi")
    assert time.perf_counter() - started < SECONDS_PER_INPUT
