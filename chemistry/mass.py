"""Accurate-mass suspect screening: which reference standards fit an observed m/z."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from rdkit import Chem

PROTON_MASS = 1.007276  # Da (CODATA 2018: 1.007 276 466 6)
ELECTRON_MASS = 0.000549  # Da (CODATA 2018: 0.000 548 579 9)
_ELEMENT = re.compile(r"([A-Z][a-z]?)(\d*)")


class Adduct(StrEnum):
    PROTONATED = "[M+H]+"  # a neutral molecule that took a proton (positive ESI)
    CATION = "[M]+"  # a permanently charged cation, e.g. a quaternary ammonium


@dataclass(frozen=True, slots=True)
class MassReference:
    name: str
    inchikey: str
    formula: str
    exact_mass: float  # monoisotopic mass in Da as RDKit's CalcExactMolWt gives it (Identity)

    @property
    def charged(self) -> bool:
        """A formula ending in '+' (e.g. 'C4H12N+'): RDKit has already taken off the electron."""
        return self.formula.rstrip("0123456789").endswith("+")


@dataclass(frozen=True, slots=True)
class MassCandidate:
    name: str
    inchikey: str
    formula: str
    expected_mz: float  # m/z of the reference's ion for the adduct
    ppm_error: float  # (observed - expected) / expected * 1e6, signed

    def to_dict(self) -> dict[str, str | float]:
        return {
            "name": self.name,
            "inchikey": self.inchikey,
            "formula": self.formula,
            "expected_mz": round(self.expected_mz, 6),
            "ppm_error": round(self.ppm_error, 3),
        }


def formula_mass(formula: str) -> float:
    """Monoisotopic mass (most abundant isotope of each element) of a formula, e.g. 'C17H12N4FBr'.

    A trailing charge ('+', '-', '+2') is ignored: electrons are accounted for by the adduct.
    """
    body = re.sub(r"[+-]\d*$", "", formula.strip())
    table = Chem.GetPeriodicTable()
    if not body or _ELEMENT.sub("", body):
        raise ValueError(f"not a molecular formula: {formula!r}")
    mass = 0.0
    for element, count in _ELEMENT.findall(body):
        mass += table.GetMostCommonIsotopeMass(element) * (int(count) if count else 1)
    return mass


def ion_mz(reference: MassReference, adduct: Adduct | str = Adduct.PROTONATED) -> float:
    """m/z of the reference's singly charged ion.

    [M+H]+: M + proton. [M]+: for a permanently charged cation (formula ending in '+') the
    mass as stored, which already lacks the electron; for a neutral formula M - electron.
    """
    if Adduct(adduct) is Adduct.PROTONATED:
        return reference.exact_mass + PROTON_MASS
    return reference.exact_mass if reference.charged else reference.exact_mass - ELECTRON_MASS


def screen(
    mz: float,
    references: Iterable[MassReference],
    *,
    adduct: Adduct | str = Adduct.PROTONATED,
    tolerance_ppm: float = 5.0,
) -> list[MassCandidate]:
    """References whose ion lies within tolerance_ppm of mz, by |ppm error| then name.

    5 ppm is the usual tolerance of Orbitrap and Q-TOF suspect screening; isomers share a
    formula and so always come out together: mass alone cannot tell them apart.
    """
    if mz <= 0 or tolerance_ppm < 0:
        raise ValueError("m/z must be positive and the tolerance non-negative")
    found = []
    for reference in references:
        expected = ion_mz(reference, adduct)
        error = (mz - expected) / expected * 1e6
        if abs(error) <= tolerance_ppm:
            found.append(
                MassCandidate(
                    reference.name, reference.inchikey, reference.formula, expected, error
                )
            )
    found.sort(key=lambda c: (abs(c.ppm_error), c.name))
    return found
