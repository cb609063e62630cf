"""Type aliases shared across the chemistry package."""

from typing import TypeAlias

from rdkit import Chem

Mol: TypeAlias = Chem.Mol
