"""SVG drawings of structures for the web console, with a highlightable substructure."""

from __future__ import annotations

import re

from rdkit import Chem
from rdkit.Chem.Draw import rdMolDraw2D

from chemistry.errors import InvalidStructureError
from chemistry.types import Mol

_PROLOG = re.compile(r"^\s*<\?xml[^>]*\?>\s*")


def svg(
    mol: Mol, *, highlight_smarts: str | None = None, width: int = 300, height: int = 220
) -> str:
    """An <svg> element (no XML prolog, so it can be inlined in HTML) drawn by MolDraw2DSVG.

    Every match of highlight_smarts is highlighted (atoms and the bonds between them); an
    invalid SMARTS raises InvalidStructureError. Width and height are in pixels.
    """
    atoms: set[int] = set()
    bonds: set[int] = set()
    if highlight_smarts:
        pattern = Chem.MolFromSmarts(highlight_smarts)
        if pattern is None:
            raise InvalidStructureError(highlight_smarts, reason="invalid SMARTS")
        for match in mol.GetSubstructMatches(pattern):
            atoms.update(match)
        for bond in mol.GetBonds():
            if bond.GetBeginAtomIdx() in atoms and bond.GetEndAtomIdx() in atoms:
                bonds.add(bond.GetIdx())
    drawer = rdMolDraw2D.MolDraw2DSVG(width, height)
    rdMolDraw2D.PrepareAndDrawMolecule(
        drawer, Chem.Mol(mol), highlightAtoms=sorted(atoms), highlightBonds=sorted(bonds)
    )
    drawer.FinishDrawing()
    return _PROLOG.sub("", drawer.GetDrawingText())
