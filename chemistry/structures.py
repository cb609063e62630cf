"""Parse, standardise and identify structures: the first three steps of the pipeline."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from rdkit import Chem, rdBase
from rdkit.Chem import rdMolDescriptors
from rdkit.Chem.MolStandardize import rdMolStandardize

from chemistry.errors import InvalidStructureError
from chemistry.types import Mol

# Input limits, applied before RDKit sees anything. The largest NPS of interest (synthetic
# cannabinoids, nitazenes, fentanyl analogues) have fewer than 40 heavy atoms and SMILES under
# 120 characters; the limits leave room for peptides and conjugates while keeping a single
# parse far below a millisecond-scale budget.
MAX_SMILES_LENGTH = 1_000
MAX_INCHI_LENGTH = 2_000
MAX_HEAVY_ATOMS = 150


class StructureFormat(StrEnum):
    SMILES = "smiles"
    INCHI = "inchi"


@dataclass(frozen=True, slots=True)
class Identity:
    """What identifies a standardised structure."""

    smiles: str  # RDKit canonical isomeric SMILES of the standardised parent
    inchi: str  # standard InChI
    inchikey: str  # standard InChIKey
    formula: str  # Hill-order molecular formula, e.g. C21H28N2O (charge appended, e.g. +)
    exact_mass: float  # monoisotopic mass in daltons


class _ThreadLogCollector(logging.Handler):
    """Collects RDKit's log messages for the threads that asked, so reasons can be reported."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self._local = threading.local()

    def start(self) -> None:
        self._local.messages = []

    def stop(self) -> list[str]:
        messages: list[str] = getattr(self._local, "messages", None) or []
        self._local.messages = None
        return messages

    def emit(self, record: logging.LogRecord) -> None:
        messages = getattr(self._local, "messages", None)
        if messages is not None:
            messages.append(record.getMessage())


rdBase.LogToPythonLogger()
_RDKIT_LOGGER = logging.getLogger("rdkit")
_RDKIT_LOGGER.propagate = False  # RDKit's complaints about bad input are ours to report
for _handler in list(_RDKIT_LOGGER.handlers):  # RDKit installs a stderr handler of its own
    _RDKIT_LOGGER.removeHandler(_handler)
_COLLECTOR = _ThreadLogCollector()
_RDKIT_LOGGER.addHandler(_COLLECTOR)
_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")


@contextmanager
def rdkit_messages() -> Iterator[list[str]]:
    """Collect RDKit's log messages emitted by this thread while the block runs."""
    collected: list[str] = []
    _COLLECTOR.start()
    try:
        yield collected
    finally:
        for message in _COLLECTOR.stop():
            text = _TIMESTAMP.sub("", message).strip()
            if text and text != "ERROR:":
                collected.append(text)


def _syntax_reason(messages: list[str], fallback: str) -> str:
    """RDKit's first complaint plus where it points, e.g. 'syntax error ... position 9'."""
    relevant = [m for m in messages if "Parse Error" in m or "ERROR" in m or "error" in m]
    if not relevant:
        return fallback
    reason = relevant[0].replace("SMILES Parse Error: ", "")
    where = next((m for m in relevant if "position" in m), None)
    if where and where != relevant[0]:
        reason += "; " + where.replace("SMILES Parse Error: ", "").rstrip(":")
    return reason


def parse(text: str, fmt: StructureFormat | str = StructureFormat.SMILES) -> Mol:
    """Parse a SMILES or InChI string into a sanitised molecule.

    Raises InvalidStructureError with RDKit's own reason when the string is empty, too long,
    unparsable, chemically impossible (valence, aromaticity) or too large.
    """
    fmt = StructureFormat(fmt)
    stripped = text.strip()
    if not stripped:
        raise InvalidStructureError(text, reason="empty structure")
    limit = MAX_SMILES_LENGTH if fmt is StructureFormat.SMILES else MAX_INCHI_LENGTH
    if len(stripped) > limit:
        raise InvalidStructureError(
            text, reason=f"{fmt.value} longer than {limit} characters ({len(stripped)})"
        )
    if any(ch.isspace() for ch in stripped):
        raise InvalidStructureError(text, reason=f"{fmt.value} must not contain whitespace")
    if fmt is StructureFormat.INCHI and not stripped.startswith("InChI="):
        raise InvalidStructureError(text, reason="InChI must start with 'InChI='")

    with rdkit_messages() as messages:
        if fmt is StructureFormat.SMILES:
            mol = Chem.MolFromSmiles(stripped, sanitize=False)
        else:
            mol = Chem.MolFromInchi(stripped, sanitize=False, removeHs=False)
    if mol is None:
        raise InvalidStructureError(
            text, reason=_syntax_reason(messages, f"RDKit could not parse the {fmt.value}")
        )
    # Check atom count before sanitisation: ring perception is the costly part of a parse.
    heavy = mol.GetNumHeavyAtoms()
    if heavy == 0:
        raise InvalidStructureError(text, reason="structure has no heavy atoms")
    if heavy > MAX_HEAVY_ATOMS:
        raise InvalidStructureError(
            text, reason=f"structure has {heavy} heavy atoms (limit {MAX_HEAVY_ATOMS})"
        )
    with rdkit_messages():
        problems = Chem.DetectChemistryProblems(mol)
    if problems:
        raise InvalidStructureError(text, reason="; ".join(p.Message() for p in problems[:3]))
    with rdkit_messages() as messages:
        try:
            Chem.SanitizeMol(mol)
            if fmt is StructureFormat.INCHI:
                mol = Chem.RemoveHs(mol)
        except (ValueError, RuntimeError) as error:
            raise InvalidStructureError(text, reason=str(error)) from error
    return mol


_CLEANUP_PARAMS = rdMolStandardize.CleanupParameters()
_UNCHARGER = rdMolStandardize.Uncharger(canonicalOrder=True)


def standardise(mol: Mol) -> Mol:
    """Return the standardised parent: cleaned up, largest organic fragment, neutralised.

    Choices (after the ChEMBL structure pipeline): RDKit MolStandardize Cleanup (normalise
    functional groups, reionise), then the fragment parent (drops counter-ions and solvents, so
    a hydrochloride and its free base share one identity), then the charge parent (neutralise
    where a neutral form exists; quaternary ammonium keeps its charge). Stereochemistry is kept.
    Tautomers are not canonicalised here: standard InChI already treats mobile hydrogens as one
    identity, and RDKit's canonical tautomer enumeration costs ~10x the rest of the pipeline.
    """
    try:
        with rdkit_messages():
            cleaned = rdMolStandardize.Cleanup(mol, _CLEANUP_PARAMS)
            parent = rdMolStandardize.FragmentParent(cleaned, _CLEANUP_PARAMS, True)
            neutral = _UNCHARGER.uncharge(parent)
            Chem.SanitizeMol(neutral)
    except (ValueError, RuntimeError) as error:  # RDKit raises these for pathological inputs
        raise InvalidStructureError(
            Chem.MolToSmiles(mol), reason=f"standardisation failed: {error}"
        ) from error
    return neutral


def identify(mol: Mol) -> Identity:
    """Canonical SMILES, standard InChI and InChIKey, formula and monoisotopic mass."""
    with rdkit_messages():
        inchi = Chem.MolToInchi(mol)
    if not inchi:
        raise InvalidStructureError(
            Chem.MolToSmiles(mol), reason="no InChI could be generated for this structure"
        )
    return Identity(
        smiles=Chem.MolToSmiles(mol),
        inchi=inchi,
        inchikey=Chem.InchiToInchiKey(inchi),
        formula=rdMolDescriptors.CalcMolFormula(mol),
        exact_mass=round(rdMolDescriptors.CalcExactMolWt(mol), 6),
    )


def identify_text(text: str, fmt: StructureFormat | str = StructureFormat.SMILES) -> Identity:
    """Parse, standardise and identify in one call."""
    return identify(standardise(parse(text, fmt)))
