"""Structural generic definitions from drug laws, as SMARTS, with the rule that matched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from rdkit import Chem

from chemistry.classification import AMINE, RULES
from chemistry.types import Mol
from chemistry.vocabulary import ChemicalGroup

HALOGENS = frozenset({"F", "Cl", "Br", "I"})


@dataclass(frozen=True, slots=True)
class DefinitionMatch:
    id: str
    title: str
    rule: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "rule": self.rule}


@dataclass(frozen=True, slots=True)
class GenericDefinition:
    """A legal class definition: `rules` are (name, SMARTS) alternatives, `exclude` SMARTS veto.

    `check`, when set, replaces the SMARTS rules with code that reads the matched core and
    names the modifications, for definitions written as "modified in these ways only".
    """

    id: str
    title: str
    source: str
    rules: tuple[tuple[str, str], ...] = ()
    exclude: tuple[str, ...] = ()
    check: Callable[[Mol], str | None] | None = None


def _branch(mol: Mol, start: int, core: set[int]) -> list[int]:
    """Atoms reachable from start without entering core atoms."""
    seen, stack = {start}, [start]
    while stack:
        for neighbour in mol.GetAtomWithIdx(stack.pop()).GetNeighbors():
            index = neighbour.GetIdx()
            if index not in seen and index not in core:
                seen.add(index)
                stack.append(index)
    return sorted(seen)


def _substituents(mol: Mol, atoms: set[int], core: set[int]) -> list[list[int]]:
    """Each substituent (branch off `atoms` outside `core`) as its atom indices."""
    found: list[list[int]] = []
    for index in sorted(atoms):
        for neighbour in mol.GetAtomWithIdx(index).GetNeighbors():
            if neighbour.GetIdx() not in core:
                found.append(_branch(mol, neighbour.GetIdx(), core))
    return found


def _simple(mol: Mol, branch: list[int], *, carbonyl: bool) -> bool:
    """Alkyl, alkenyl, alkoxy, hydroxy, halo, haloalkyl, amino, nitro (and ester/ether if
    carbonyl): acyclic, made of C, N, O and halogens only."""
    for index in branch:
        atom = mol.GetAtomWithIdx(index)
        if atom.IsInRing() or atom.GetSymbol() not in HALOGENS | {"C", "N", "O"}:
            return False
        if (
            not carbonyl
            and atom.GetSymbol() == "C"
            and any(
                b.GetBondTypeAsDouble() == 2 and b.GetOtherAtom(atom).GetSymbol() == "O"
                for b in atom.GetBonds()
            )
        ):
            return False
    return True


def _ring_of(mol: Mol, atom: int) -> set[int] | None:
    """The single ring holding atom, or None if the atom is in a fused system or no ring."""
    rings = [set(r) for r in mol.GetRingInfo().AtomRings() if atom in r]
    if len(rings) != 1:
        return None
    ring = rings[0]
    if any(mol.GetRingInfo().NumAtomRings(i) != 1 for i in ring):
        return None
    return ring


def _is_benzene(mol: Mol, ring: set[int]) -> bool:
    atoms = [mol.GetAtomWithIdx(i) for i in ring]
    return len(ring) == 6 and all(a.GetSymbol() == "C" and a.GetIsAromatic() for a in atoms)


@cache
def _pattern(smarts: str) -> Mol:
    pattern = Chem.MolFromSmarts(smarts)
    if pattern is None:
        raise ValueError(f"bad SMARTS {smarts}")
    return pattern


def _alkyl(mol: Mol, branch: list[int]) -> bool:
    """Saturated open-chain carbon only."""
    return all(
        (atom := mol.GetAtomWithIdx(i)).GetSymbol() == "C"
        and not atom.IsInRing()
        and atom.GetHybridization() == Chem.HybridizationType.SP3
        for i in branch
    )


def _carbonyl_oxygens(mol: Mol, carbon: int) -> set[int]:
    return {
        bond.GetOtherAtomIdx(carbon)
        for bond in mol.GetAtomWithIdx(carbon).GetBonds()
        if bond.GetBondTypeAsDouble() == 2
        and bond.GetOtherAtom(mol.GetAtomWithIdx(carbon)).GetSymbol() == "O"
    }


_FENTANYL_CORE = (
    "[CX3:1](=O)-[NX3:2](-[a:3])-[CX4;R1:4]1-[CX4;R1:5]-[CX4;R1:6]-[NX3;R1:7]"
    "(-[CX4;!R:8]-[CX4;!R:9]-[*;R:10])-[CX4;R1:11]-[CX4;R1:12]-1"
)


def fentanyl_related(mol: Mol) -> str | None:
    """21 CFR 1308.11(h)(30): fentanyl modified by one or more of (A)-(E), nothing else.

    (A) any monocycle for the phenethyl phenyl; (B) alkyl, alkenyl, alkoxyl, hydroxyl, halo,
    haloalkyl, amino or nitro in or on the phenethyl group; (C) the same, or ester or ether,
    on the piperidine; (D) any aromatic monocycle, substituted or not, for the aniline ring;
    (E) another acyl group for propionyl. Not expressible: "not otherwise controlled in any
    other schedule" (fentanyl itself, with no modification, is refused; separately scheduled
    fentanyls such as carfentanil still match) and the later scheduling exemptions.
    """
    for match in mol.GetSubstructMatches(_pattern(_FENTANYL_CORE)):
        acyl, _, amide_n, aryl, c4, c3, c2, n1, ca, cb, ring_atom, c6, c5 = match
        aniline, tail = _ring_of(mol, aryl), _ring_of(mol, ring_atom)
        if aniline is None or tail is None:
            continue
        piperidine = {c4, c3, c2, n1, c6, c5}
        core = {acyl, *_carbonyl_oxygens(mol, acyl), amide_n, *aniline, *piperidine, ca, cb, *tail}
        acyl_groups = _substituents(mol, {acyl}, core)
        core |= {i for group in acyl_groups for i in group}
        modifications = []
        if not _is_benzene(mol, tail):
            modifications.append("A")
        phenethyl = _substituents(mol, {ca, cb, *tail}, core)
        if phenethyl:
            if not all(_simple(mol, branch, carbonyl=False) for branch in phenethyl):
                continue
            modifications.append("B")
        on_piperidine = _substituents(mol, piperidine, core)
        if on_piperidine:
            if not all(_simple(mol, branch, carbonyl=True) for branch in on_piperidine):
                continue
            modifications.append("C")
        if not _is_benzene(mol, aniline) or _substituents(mol, aniline, core):
            modifications.append("D")
        propionyl = (
            len(acyl_groups) == 1 and len(acyl_groups[0]) == 2 and _alkyl(mol, acyl_groups[0])
        )
        if not propionyl:
            modifications.append("E")
        if modifications:
            return "fentanyl modified by (" + "), (".join(modifications) + ")"
    return None


_CATHINONE_CORE = "c1:c:c:c:c:c:1-[CX3](=O)-[CX4H1](-[CX4])-[NX3;!$(N-C=O)]"
# Excepted by name in the UK definition; compared as stereo-free canonical SMILES.
UK_NAMED_EXCEPTIONS = {
    "bupropion": "CC(NC(C)(C)C)C(=O)c1cccc(Cl)c1",
    "cathinone": "CC(N)C(=O)c1ccccc1",
    "diethylpropion": "CCN(CC)C(C)C(=O)c1ccccc1",
    "pyrovalerone": "CCCC(C(=O)c1ccc(C)cc1)N1CCCC1",
}


@cache
def _exception_smiles() -> frozenset[str]:
    return frozenset(
        Chem.MolToSmiles(Chem.MolFromSmiles(smiles), isomericSmiles=False)
        for smiles in UK_NAMED_EXCEPTIONS.values()
    )


def _ring_way(mol: Mol, branch: list[int], ring: set[int]) -> str | None:
    """'listed' for alkyl, alkoxy, alkylenedioxy, haloalkyl, halide; 'other' for another
    univalent group; None for anything that makes the ring more than a substituted phenyl."""
    atoms = [mol.GetAtomWithIdx(i) for i in branch]
    symbols = {atom.GetSymbol() for atom in atoms}
    if any(atom.IsInRing() for atom in atoms):
        attached = [a for a in atoms if any(n.GetIdx() in ring for n in a.GetNeighbors())]
        dioxy = all(a.GetSymbol() == "O" for a in attached) and len(attached) == 2
        saturated = all(
            a.GetHybridization() == Chem.HybridizationType.SP3
            for a in atoms
            if a.GetSymbol() == "C"
        )
        return "listed" if dioxy and symbols <= {"C", "O"} and saturated else None
    carbons = [a.GetIdx() for a in atoms if a.GetSymbol() == "C"]
    if symbols <= HALOGENS | {"C"} and _alkyl(mol, carbons):
        return "listed"  # halide, alkyl, haloalkyl
    first = next(a for a in atoms if any(n.GetIdx() in ring for n in a.GetNeighbors()))
    if (
        symbols == {"O", "C"}
        and first.GetSymbol() == "O"
        and len(atoms) > 1
        and _alkyl(mol, carbons)
    ):
        return "listed"  # alkoxy
    return "other"


def uk_cathinone(mol: Mol) -> str | None:
    """Misuse of Drugs Act 1971, Sch. 2 Part I para 1(c): compounds structurally derived from
    2-amino-1-phenyl-1-propanone by (i) substitution in the phenyl ring with alkyl, alkoxy,
    alkylenedioxy, haloalkyl or halide (then with any further univalent substituents), (ii)
    an alkyl at the 3-position, (iii) alkyl or dialkyl on the 2-amino nitrogen, or the
    nitrogen in a ring. Bupropion, cathinone, diethylpropion and pyrovalerone are excepted
    by name (recognised here by structure). Not expressible: the exception for compounds
    specified elsewhere in the Schedule, which is a list of names.
    """
    if Chem.MolToSmiles(mol, isomericSmiles=False) in _exception_smiles():
        return None
    for match in mol.GetSubstructMatches(_pattern(_CATHINONE_CORE)):
        ring = set(match[:6])
        carbonyl, alpha, c3, nitrogen = match[6], match[8], match[9], match[10]
        core = ring | {carbonyl, match[7], alpha, c3, nitrogen}
        kinds = [_ring_way(mol, branch, ring) for branch in _substituents(mol, ring, core)]
        if None in kinds or (kinds and "listed" not in kinds):
            continue
        ways = ["(i)"] if kinds else []
        beyond_c3 = _substituents(mol, {c3}, core)
        if beyond_c3:
            if len(beyond_c3) > 1 or not _alkyl(mol, beyond_c3[0]):
                continue
            ways.append("(ii)")
        n_atom = mol.GetAtomWithIdx(nitrogen)
        on_n = _substituents(mol, {nitrogen}, core)
        if n_atom.IsInRing():
            ways.append("(iii) nitrogen in a ring")
        elif on_n:
            if not all(_alkyl(mol, branch) for branch in on_n):
                continue
            ways.append("(iii) N-alkyl" if len(on_n) == 1 else "(iii) N,N-dialkyl")
        if ways:
            return "2-amino-1-phenyl-1-propanone modified by " + ", ".join(ways)
    return None


def _group_rules(
    group: ChemicalGroup, *, skip: tuple[str, ...] = ()
) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name, smarts)
        for g, name, smarts in RULES
        if g is group and not any(word in name for word in skip)
    )


# An open-chain alpha carbon that is not an amino acid's (no phenylalanine, tryptophan).
_ALPHA = "[CX4;!R;!$(C-[CX3](=O)[OX2H1,OX1-,OX2])]"
# Phenethylamine nitrogen as the NpSG reads it: primary, N-alkyl or N-benzyl (NBOMe), or in an
# unsubstituted pyrrolidine or piperidine (the pyrovalerone type); not a 4-substituted
# piperidine such as fentanyl's.
_NPSG_N = (
    "[NX3;!$(N-C=[O,S,N]);!$(N-a);"
    "$([NX3;!R;!$(N-[!#6;!#1]);!$(N-[CX4]-[!#6;!#1])]),"
    "$([NX3;R1]1-[CH2]-[CH2]-[CH2]-[CH2]-1),$([NX3;R1]1-[CH2]-[CH2]-[CH2]-[CH2]-[CH2]-1)]"
)
_NPSG = "Germany, Neue-psychoaktive-Stoffe-Gesetz (NpSG), Anlage"
# NpSG-wide limits SMARTS cannot express: medicinal products and substances already under the
# Betaeubungsmittelgesetz are outside the NpSG, and each group caps substituent sizes and lists
# allowed substituents in prose; these SMARTS state the core and its open positions only.
DEFINITIONS: tuple[GenericDefinition, ...] = (
    GenericDefinition(
        "us-fentanyl-related-substances",
        "US fentanyl-related substances",
        "21 CFR 1308.11(h)(30)",
        check=fentanyl_related,
    ),
    GenericDefinition(
        "uk-synthetic-cathinones",
        "UK generic definition of synthetic cathinones",
        "Misuse of Drugs Act 1971, Schedule 2, Part I, paragraph 1(c)",
        check=uk_cathinone,
    ),
    GenericDefinition(
        "de-npsg-phenethylamines",
        "NpSG: compounds derived from 2-phenethylamine",
        _NPSG,
        rules=(
            ("2-arylethan-1-amine", f"[c;r6]-[CX4;!R;!$(C-[OX2])]-{_ALPHA}-{_NPSG_N}"),
            ("2-amino-1-arylethan-1-one (beta-keto)", f"[c;r6]-[CX3;!R](=O)-{_ALPHA}-{_NPSG_N}"),
        ),
    ),
    GenericDefinition(
        "de-npsg-cannabimimetics",
        "NpSG: cannabimimetics / synthetic cannabinoids",
        _NPSG,
        rules=_group_rules(ChemicalGroup.SYNTHETIC_CANNABINOID, skip=("classical",)),
    ),
    GenericDefinition(
        "de-npsg-benzodiazepines",
        "NpSG: benzodiazepines",
        _NPSG,
        rules=_group_rules(ChemicalGroup.BENZODIAZEPINE),
    ),
    GenericDefinition(
        "de-npsg-n-2-aminocyclohexylamides",
        "NpSG: N-(2-aminocyclohexyl)amides",
        _NPSG,
        rules=(
            (
                "N-(2-aminocyclohexyl)amide",
                f"[CX3](=O)(-[#6])-[NX3]-[CX4;R1]1-[CX4;R1](-{AMINE})-[CX4;R1]-[CX4;R1]-[CX4;R1]-[CX4;R1]-1",
            ),
        ),
    ),
    GenericDefinition(
        "de-npsg-tryptamines",
        "NpSG: tryptamines",
        _NPSG,
        rules=(
            (
                "2-(indol-3-yl)ethan-1-amine",
                f"c1(-[CX4;!R]-{_ALPHA}-{AMINE}):c:[nX3]:c2:c:c:c:c:c:1:2",
            ),
        ),
    ),
    GenericDefinition(
        "de-npsg-arylcyclohexylamines",
        "NpSG: arylcyclohexylamines",
        _NPSG,
        rules=_group_rules(ChemicalGroup.ARYLCYCLOHEXYLAMINE),
    ),
    GenericDefinition(
        "de-npsg-benzimidazole-opioids",
        "NpSG: benzimidazole opioids",
        _NPSG,
        rules=_group_rules(ChemicalGroup.NITAZENE),
    ),
)


def generic_definitions(mol: Mol) -> list[DefinitionMatch]:
    """Every definition the (standardised) structure falls under, in DEFINITIONS order."""
    found = []
    for definition in DEFINITIONS:
        if any(mol.HasSubstructMatch(_pattern(s)) for s in definition.exclude):
            continue
        rule: str | None = None
        if definition.check is not None:
            rule = definition.check(mol)
        else:
            rule = next(
                (
                    name
                    for name, smarts in definition.rules
                    if mol.HasSubstructMatch(_pattern(smarts))
                ),
                None,
            )
        if rule is not None:
            found.append(DefinitionMatch(definition.id, definition.title, rule))
    return found
