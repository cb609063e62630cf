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

# Input limits, applied before RDKit does any costly work. The largest NPS of interest (synthetic
# cannabinoids, nitazenes, fentanyl analogues) have fewer than 40 heavy atoms and SMILES under
# 120 characters; the reference library's largest has 43 heavy atoms and 7 rings. The limits
# leave room for peptides and conjugates while keeping a single parse far below a
# millisecond-scale budget.
MAX_SMILES_LENGTH = 1_000
MAX_INCHI_LENGTH = 2_000
MAX_HEAVY_ATOMS = 150
# Atoms of every kind, hydrogens included; an InChI formula is checked against it before parsing
# ("InChI=1S/32766H2/h32766*1H", 26 characters, took RDKit 6 s to build).
MAX_ATOMS = 4 * MAX_HEAVY_ATOMS
# Rings (the cycle rank: bonds - atoms + fragments). RDKit's aromaticity perception tries every
# combination of up to 6 rings of a fused system until each atom is settled, so its cost grows
# about as rings^6, and sanitising runs it three times. A valid 293-character graphene flake
# with two carbonyls (55 rings) took 95 s, holding the GIL throughout. Worst cases found by a
# random search over decorated graphene flakes and nanotubes (the generators are in
# tests/chemistry/hostile.py), for the whole parse-standardise-identify: 16 rings 0.12 s,
# 20 rings 0.36 s, 25 rings 1.7 s, 30 rings 3.8 s. The reference library's maximum is 7.
MAX_RINGS = 16
# Bonds on one atom. RDKit keeps an atom's valence in a signed byte: past 127 bonds it fails
# with an internal error. No known compound has a coordination number above 16.
MAX_DEGREE = 16


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

    Raises InvalidStructureError with the reason (RDKit's own where it has one) when the string
    is empty, too long, not printable ASCII, unparsable, too large (atoms, rings, bonds on one
    atom), has wildcard atoms, or is chemically impossible (valence, aromaticity). The size
    checks run before sanitisation, whose ring and aromaticity perception is the costly part.
    """
    fmt = StructureFormat(fmt)
    stripped = text.strip()
    _check_text(text, stripped, fmt)
    with rdkit_messages() as messages:
        if fmt is StructureFormat.SMILES:
            mol = Chem.MolFromSmiles(stripped, sanitize=False)
        else:
            mol = Chem.MolFromInchi(stripped, sanitize=False, removeHs=False)
    if mol is None:
        raise InvalidStructureError(
            text, reason=_syntax_reason(messages, f"RDKit could not parse the {fmt.value}")
        )
    _check_graph(text, mol)
    with rdkit_messages():
        try:
            problems = Chem.DetectChemistryProblems(mol)
        except (ValueError, RuntimeError) as error:
            raise InvalidStructureError(text, reason=_rdkit_reason(error)) from error
    if problems:
        raise InvalidStructureError(text, reason="; ".join(p.Message() for p in problems[:3]))
    with rdkit_messages():
        try:
            Chem.SanitizeMol(mol)
            if fmt is StructureFormat.INCHI:
                mol = Chem.RemoveHs(mol)
        except (ValueError, RuntimeError) as error:
            raise InvalidStructureError(text, reason=_rdkit_reason(error)) from error
    return mol


def _check_text(text: str, stripped: str, fmt: StructureFormat) -> None:
    """The checks on the string itself: nothing here runs RDKit."""
    if not stripped:
        raise InvalidStructureError(text, reason="empty structure")
    limit = MAX_SMILES_LENGTH if fmt is StructureFormat.SMILES else MAX_INCHI_LENGTH
    if len(stripped) > limit:
        raise InvalidStructureError(
            text, reason=f"{fmt.value} longer than {limit} characters ({len(stripped)})"
        )
    if any(ch.isspace() for ch in stripped):
        raise InvalidStructureError(text, reason=f"{fmt.value} must not contain whitespace")
    # SMILES and InChI are printable ASCII. RDKit reads the UTF-8 bytes of anything else and
    # can silently drop them: two Cyrillic Es (U+0421) then "O" parsed as water, and a NUL byte
    # cut an InChI short to a different structure. A lone surrogate cannot reach RDKit at all.
    for position, ch in enumerate(stripped, start=1):
        if not (ch.isascii() and ch.isprintable()):
            raise InvalidStructureError(
                text,
                reason=f"{fmt.value} must be printable ASCII: U+{ord(ch):04X} at position "
                f"{position}",
            )
    if fmt is StructureFormat.INCHI:
        if not stripped.startswith("InChI="):
            raise InvalidStructureError(text, reason="InChI must start with 'InChI='")
        heavy, total = _inchi_formula_atoms(stripped)
        if heavy > MAX_HEAVY_ATOMS:
            raise InvalidStructureError(
                text, reason=f"InChI formula has {heavy} heavy atoms (limit {MAX_HEAVY_ATOMS})"
            )
        if total > MAX_ATOMS:
            raise InvalidStructureError(
                text, reason=f"InChI formula has {total} atoms (limit {MAX_ATOMS})"
            )


_FORMULA_COMPONENT = re.compile(r"(\d*)((?:[A-Z][a-z]?\d*)+)")
_FORMULA_ELEMENT = re.compile(r"([A-Z][a-z]?)(\d*)")


def _inchi_formula_atoms(inchi: str) -> tuple[int, int]:
    """Heavy and total atoms of the formula layer, e.g. 2C18H36N3OP.Sn; (0, 0) when the layer
    is not a formula (RDKit then refuses the InChI itself)."""
    layers = inchi.split("/")
    if len(layers) < 2:
        return 0, 0
    heavy = total = 0
    for component in layers[1].split("."):
        match = _FORMULA_COMPONENT.fullmatch(component)
        if match is None:
            return 0, 0
        times = int(match.group(1) or 1)
        for symbol, count in _FORMULA_ELEMENT.findall(match.group(2)):
            atoms = times * int(count or 1)
            total += atoms
            heavy += 0 if symbol == "H" else atoms
    return heavy, total


def _check_graph(text: str, mol: Mol) -> None:
    """Size limits on the parsed, not yet sanitised molecule (cheap graph counts)."""
    heavy = mol.GetNumHeavyAtoms()
    if heavy == 0:
        raise InvalidStructureError(text, reason="structure has no heavy atoms")
    if heavy > MAX_HEAVY_ATOMS:
        raise InvalidStructureError(
            text, reason=f"structure has {heavy} heavy atoms (limit {MAX_HEAVY_ATOMS})"
        )
    if mol.GetNumAtoms() > MAX_ATOMS:
        raise InvalidStructureError(
            text, reason=f"structure has {mol.GetNumAtoms()} atoms (limit {MAX_ATOMS})"
        )
    wildcards = sum(1 for atom in mol.GetAtoms() if atom.GetAtomicNum() == 0)
    if wildcards:
        raise InvalidStructureError(
            text,
            reason=f"structure has {wildcards} wildcard atom(s) ('*'), which have no identity",
        )
    rings = mol.GetNumBonds() - mol.GetNumAtoms() + len(Chem.GetMolFrags(mol))
    if rings > MAX_RINGS:
        raise InvalidStructureError(text, reason=f"structure has {rings} rings (limit {MAX_RINGS})")
    for atom in mol.GetAtoms():
        if atom.GetDegree() > MAX_DEGREE:
            raise InvalidStructureError(
                text,
                reason=f"atom {atom.GetIdx() + 1} ({atom.GetSymbol()}) has {atom.GetDegree()} "
                f"bonds (limit {MAX_DEGREE})",
            )


def _rdkit_reason(error: Exception) -> str:
    """RDKit's message without the C++ source location lines it appends."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    kept = [
        line for line in lines if not line.startswith(("Violation occurred", "RDKIT:", "BOOST:"))
    ]
    return "; ".join(kept[:2]) or type(error).__name__


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
            _shown(mol), reason=f"standardisation failed: {_rdkit_reason(error)}"
        ) from error
    return neutral


def identify(mol: Mol) -> Identity:
    """Canonical SMILES, standard InChI and InChIKey, formula and monoisotopic mass."""
    try:
        with rdkit_messages():
            inchi = Chem.MolToInchi(mol)
            if not inchi:
                raise InvalidStructureError(
                    _shown(mol), reason="no InChI could be generated for this structure"
                )
            return Identity(
                smiles=Chem.MolToSmiles(mol),
                inchi=inchi,
                inchikey=Chem.InchiToInchiKey(inchi),
                formula=rdMolDescriptors.CalcMolFormula(mol),
                exact_mass=round(rdMolDescriptors.CalcExactMolWt(mol), 6),
            )
    except InvalidStructureError:
        raise
    except (ValueError, RuntimeError) as error:
        raise InvalidStructureError(
            _shown(mol), reason=f"identification failed: {_rdkit_reason(error)}"
        ) from error


def _shown(mol: Mol) -> str:
    """The molecule as SMILES for an error message, or '' when even that fails."""
    try:
        with rdkit_messages():
            return str(Chem.MolToSmiles(mol))
    except (ValueError, RuntimeError):
        return ""


def identify_text(text: str, fmt: StructureFormat | str = StructureFormat.SMILES) -> Identity:
    """Parse, standardise and identify in one call."""
    return identify(standardise(parse(text, fmt)))
