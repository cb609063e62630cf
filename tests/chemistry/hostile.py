"""A corpus of hostile structure strings: what a careless or malicious client might send.

Each entry is (id, format, text). The ids say what the entry probes; the "rdkit-NNNN" ids name
the RDKit GitHub issue that reported the input as crashing, hanging or misbehaving (most are
fixed in the RDKit we run; they stay here so a regression shows up as a failing test). The
"found-..." ids are inputs found while building this corpus that hung RDKit, escaped as another
exception than InvalidStructureError, or were silently read as another structure.
Generated entries (graphs, flakes, tubes) are built with plain string code: no RDKit runs here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from hypothesis import strategies as st

from chemistry.structures import MAX_HEAVY_ATOMS, MAX_INCHI_LENGTH, MAX_SMILES_LENGTH
from tests.chemistry.named import GROUP_MEMBERS


@dataclass(frozen=True, slots=True)
class Hostile:
    id: str
    fmt: str  # "smiles" or "inchi"
    text: str


def closure(number: int) -> str:
    """A SMILES ring-closure label: 1-9, %10-%99, then %(100)."""
    if number < 10:
        return str(number)
    if number < 100:
        return f"%{number}"
    return f"%({number})"


def graph_smiles(atoms: list[str], edges: Iterable[tuple[int, int]]) -> str:
    """A SMILES for any graph, written in the order given.

    Atom i bonds to atom i+1 directly when they are neighbours (else a dot); every other edge
    is a ring closure, its label freed after use and reused, as a SMILES writer would.
    """
    pairs = sorted({(min(a, b), max(a, b)) for a, b in edges})
    chain = {(a, b) for a, b in pairs if b == a + 1}
    opened: dict[int, list[int]] = {}  # atom -> the later atoms it has a ring bond to
    for a, b in pairs:
        if (a, b) not in chain:
            opened.setdefault(a, []).append(b)
    labels: dict[tuple[int, int], int] = {}
    free: list[int] = []
    next_label = 1
    parts: list[str] = []
    for index, symbol in enumerate(atoms):
        if index:
            parts.append("" if (index - 1, index) in chain else ".")
        text = symbol
        for key in [key for key in labels if key[1] == index]:
            label = labels.pop(key)
            text += closure(label)
            free.append(label)
        for later in opened.get(index, []):
            if free:
                label = min(free)
                free.remove(label)
            else:
                label, next_label = next_label, next_label + 1
            labels[(index, later)] = label
            text += closure(label)
        parts.append(text)
    return "".join(parts)


def complete_graph(symbol: str, n: int) -> str:
    return graph_smiles([symbol] * n, [(a, b) for a in range(n) for b in range(a + 1, n)])


def grid(symbol: str, rows: int, columns: int, *, diagonal: bool = False) -> str:
    index = {(r, c): r * columns + c for r in range(rows) for c in range(columns)}
    edges = []
    for (r, c), i in index.items():
        for dr, dc in [(0, 1), (1, 0), *([(1, 1)] if diagonal else [])]:
            if (r + dr, c + dc) in index:
                edges.append((i, index[(r + dr, c + dc)]))
    return graph_smiles([symbol] * len(index), edges)


def acene(rings: int) -> str:
    """Linear fused benzene rings (anthracene, tetracene, ...): two rails joined by rungs."""
    length = 2 * rings + 1
    top, bottom = list(range(length)), list(range(length, 2 * length))
    edges = [*itertools.pairwise(top), *itertools.pairwise(bottom)]
    edges += [(top[i], bottom[i]) for i in range(0, length, 2)]
    return graph_smiles(["c"] * (2 * length), edges)


def graphene(rows: int, columns: int) -> str:
    """A hexagonal (honeycomb) flake of aromatic carbon: a brick-wall lattice with its dangling
    atoms trimmed, so every atom lies in a ring."""
    cells = {(r, c) for r in range(rows) for c in range(columns)}
    edges = {
        (cell, other)
        for cell in cells
        for other in [(cell[0], cell[1] + 1), *([(cell[0] + 1, cell[1])] if sum(cell) % 2 else [])]
        if other in cells
    }
    while True:
        degree = {cell: sum(cell in edge for edge in edges) for cell in cells}
        dangling = {cell for cell, count in degree.items() if count < 2}
        if not dangling:
            break
        cells -= dangling
        edges = {edge for edge in edges if not set(edge) & dangling}
    index = {cell: i for i, cell in enumerate(sorted(cells))}
    return graph_smiles(["c"] * len(index), [(index[a], index[b]) for a, b in edges])


def nanotube(rows: int, columns: int) -> str:
    """A zigzag carbon nanotube segment: the brick-wall lattice rolled up (columns even)."""
    edges = set()
    for r in range(rows):
        for c in range(columns):
            here = r * columns + c
            edges.add((here, r * columns + (c + 1) % columns))
            if r + 1 < rows and (r + c) % 2 == 0:
                edges.add((here, (r + 1) * columns + c))
    return graph_smiles(["c"] * (rows * columns), edges)


def hypercube(dimension: int, symbol: str) -> str:
    n = 2**dimension
    edges = [
        (a, a ^ (1 << bit)) for a in range(n) for bit in range(dimension) if a < a ^ (1 << bit)
    ]
    return graph_smiles([symbol] * n, edges)


def _repeat_to(unit: str, length: int) -> str:
    return (unit * (length // len(unit) + 1))[:length]


# Reported inputs, by RDKit issue (github.com/rdkit/rdkit/issues/NNNN) or MolVS issue.
CID_102128817 = (  # rdkit-1281 / rdkit-1360: ring finding ran for hours and ate 200 GB
    "COC1=CC=C(C=C1)C2C3=C(C=CC4=CC=CC=C43)OC5=CC6=C(C=C5)C7=NC8=C9C=CC1=CC9=C(N8)N=C3C4=C5C=CC"
    "(=C4)OC4=C(C(C8=C(C=CC9=CC=CC=C98)OC8=CC9=C(C=C8)C8=NC9=NC9=C%10C=C(C=CC%10=C(N9)N=C9C%10="
    "C(C=C(C=C%10)OC%10=C2C2=CC=CC=C2C=C%10)C(=N9)NC2=NC(=N8)C8=C2C=C(C=C8)OC2=C(C(C8=C(C=CC9=CC"
    "=CC=C98)OC8=CC9=C(C=C8)C(=NC5=N3)N=C9NC6=N7)C3=CC=C(C=C3)OC)C3=CC=CC=C3C=C2)OC2=C(C(C3=C(O1"
    ")C=CC1=CC=CC=C13)C1=CC=C(C=C1)OC)C1=CC=CC=C1C=C2)C1=CC=C(C=C1)OC)C1=CC=CC=C1C=C4"
)
CUCURBITURIL = (  # rdkit-8880: stereo perception time grew with each call
    "O=C1N2CN3C(=O)N4CN5C(=O)N6CN7C(=O)N8CN9C(=O)N%10CN%11C(=O)N%12CN%13C(=O)N%14CN1[C@H]1[C@@H]2"
    "N2CN%15C(=O)N(CN%16C(=O)N(CN%17C(=O)N(CN%18C(=O)N(CN%19C(=O)N(CN%20C(=O)N(CN1C2=O)[C@H]%14"
    "[C@@H]%20%13)[C@H]%12[C@@H]%19%11)[C@H]%10[C@@H]%189)[C@H]8[C@@H]%177)[C@H]6[C@@H]%165)[C@H]4"
    "[C@@H]%153"
)
C60 = (
    "c12c3c4c5c1c1c6c7c2c2c8c3c3c9c4c4c%10c5c5c1c1c6c6c%11c7c2c2c7c8c3c3c8c9c4c4c9c%10c5c5c1c1c6c6"
    "c%11c2c2c7c3c3c8c4c4c9c5c1c1c6c2c3c41"
)
FULLERENE_ADDUCT = (  # rdkit-1900: a buckyball derivative RDKit could not kekulise
    "c12c3c4c5c6c7C8c5c-9c%10c%11c%12c%13c%14c%15c%11c9c%16c%17c%15c%18-c%14c%19c%20c%13c(c%12c1"
    "c%104)c%21c2c%22c%23c3c6c%24c%23c%25c%26c%22c%21c%20c%27C%19%28C%29(c%18c%30c%17c(C%168)c-%31"
    "c%32c%30c%29c(=c%27%26)c%25c%32c%24c7%31)CC=CC%28"
)
# Valid, 293 characters, 142 atoms, 55 rings: a graphene flake with two carbonyls on its edge.
# Without the ring limit RDKit's aromaticity perception spent 95 s on it (on a loaded machine)
# before returning a perfectly good identity.
GRAPHENE_OXIDE_FLAKE = (
    "c1cc2cc3cc4cc5cc(=O)6.c7c1c1c2c2c3c3c4c4c5c5c6.c7c6c1c1c2c2c3c3c4c4c5c5.c7c6c6c1c1c2c2c3c3c4"
    "c4c5.c7c5c6c6c1c1c2c2c3c3c4c4.c7c5c5c6c6c1c1c2c2c3c3c4.c(=O)7c4c5c5c6c6c1c1c2c2c3c3.c7c4c4c5"
    "c5c6c6c1c1c2c2c3.c7c3c4c4c5c5c6c6c1c1c2c2.c7c3c3c4c4c5c5c6c6c1c1c2.c7c2c3c3c4c4c5c5c6c6c1c1.c2"
    "cc3cc4cc5cc6cc1"
)
# 273 characters: a graphene flake with 20 dummy atoms; 54 s (dummies count as any donor).
GRAPHENE_FLAKE_WITH_DUMMIES = (
    "*1cc2cc3cc4*c5cc6cc7.c8*1c1c2c2c3c3c4*4c5c5c6c6c7.c8*7c1c1c2c2c3c3*4c4c5c5c6c6.c8*7c7c1c1c2c2"
    "c3*3c4c4c5c5c6.c8*6c7c7c1c1c2c2*3c3c4c4c5c5.c8*6c6c7c7c1c1c2*2c3c3c4c4c5.c8*5c6c6c7c7c1c1*2c2"
    "c3c3c4c4.c8*5c5c6c6c7c7c1*1c2c2c3c3c4.c8*4c5c5c6c6c7c7*1c1c2c2c3c3.c4*c5cc6cc7c*1cc2cc3"
)
IRIDIUM_COMPLEX = (  # rdkit-9270: dative bonds to Ir; MolToSmiles of a submol segfaulted
    "CC1/C=C(/C)[O][Ir]23(<-[O]=1)([c]1ccccc1c1cncc[n]->21)[c]1ccccc1c1cncc[n]->31"
)

# Found while building this corpus (RDKit 2026.09): each was a hang or an uncaught error.
FOUND_SMILES: list[tuple[str, str]] = [
    ("found-graphene-oxide-flake-95s", GRAPHENE_OXIDE_FLAKE),
    ("found-graphene-dummies-54s", GRAPHENE_FLAKE_WITH_DUMMIES),
    ("found-iron-149-bonds-runtime-error", "[Fe]" + "(C)" * 149),
    ("found-hydrogen-star-runtime-error", "[Fe]" + "([H])" * 199),
    ("found-lookalike-cyrillic-read-as-water", "\u0421\u0421O"),
    ("found-lookalike-greek-omicron-dropped", "CC\u039f"),
    ("found-byte-order-mark-dropped", "\ufeffCCO"),
    ("found-lone-surrogate-unicode-error", "C\ud800C"),
]
FOUND_INCHI: list[tuple[str, str]] = [
    ("found-inchi-32766-h2-6s", "InChI=1S/32766H2/h32766*1H"),
    ("found-inchi-32766-methane-6s", "InChI=1S/32766CH4/h32766*1H4"),
    ("found-inchi-nul-read-as-another-structure", "InChI=1S/C2H6O/c1-2-3\x00/h3H,2H2,1H3"),
]

REPORTED_SMILES: list[tuple[str, str]] = [
    ("rdkit-1281-cid-102128817", CID_102128817),
    ("rdkit-1164-bond-already-exists", "CcccC12c1"),
    ("rdkit-3048-resonance-segfault", "C1CN3N(C1)c2ccccc2N=C3N"),
    (
        "rdkit-2597-resonance-loop",
        "ClC1=NC(NC2=CC=CC3=C2C(=O)C2=CC=CC=C2C3=O)=NC(NC2=CC=CC3=C2C(=O)C2=CC=CC=C2C3=O)=N1",
    ),
    ("rdkit-5406-diazo-resonance-hang", "CC=[N+]=[N-]"),
    ("rdkit-6201-oxazinium-resonance-hang", "CCN(CC)c1ccc2nc3ccc(N(CC)CC)cc3[o+]c2c1"),
    (
        "rdkit-6530-crown-ether-draw-abort",
        "CCOC(=O)c1cc2OCCOCCOCCOCCOc3ccc(OCCOCCOCCOCCOc1cc2C(=O)OCC)cc3",
    ),
    ("rdkit-4845-coordgen-segfault", "C1C=CC=C2C1=CSC=C3C(=O)OOOC(=O)C(=CC(=O)N3)OC2=O"),
    ("rdkit-8880-cucurbituril-stereo", CUCURBITURIL),
    ("rdkit-7759-canonical-oscillation", "[C@H]12[C@H]3[C@@H]4[C@H]5[C@@H]([C@H]1N24)N53"),
    ("rdkit-8862-adamantane-flip-flop", "N[C@]1(C(=O)O)[C@@H]2C[C@H]3C[C@@H](C2)C[C@H]1C3"),
    (
        "rdkit-7429-canonical-alternation",
        "COC(=O)[C@@]12[C@@H]3N([C@H]4[C@@]5([C@@H](N([C@H]1[C@]3(C5c1ccc(OC)cc1)C(=O)OC)C(=O)OCc1ccccc1)[C@]4([C@H]2c1ccc(OC)cc1)C(=O)OC)C(=O)OC)C(=O)OCc1ccccc1",
    ),
    ("rdkit-1900-fullerene-adduct", FULLERENE_ADDUCT),
    ("rdkit-9270-iridium-dative", IRIDIUM_COMPLEX),
    (
        "rdkit-4765-embed-hang",
        "CCSCc1ccc2c(c1)c1c3c(c4c5cc(CSCC)ccc5n5c4c1n2[C@@H]1C[C@H](C(=O)OOC)[C@]5(C)O1)CNC3=O",
    ),
    ("rdkit-8776-quadratic-chain", "C" * MAX_HEAVY_ATOMS),
    ("rdkit-962-dummy-kekulize", "C2*c1ccccc1C2"),
    ("rdkit-489-aromatic-cation", "[c+]1ccccc1"),
    ("rdkit-2139-aromatic-aliphatic-mix", "C1=n(C)-c=Cn1"),
    ("rdkit-7189-normalize-heterocycle", "[O-]c1coc[nH+]1"),
    ("rdkit-3773-dative-phosphine", "P(C)->[Cu+]"),
    ("molvs-4-reionizer-loop", "CCOC(=O)C(=O)[CH-]C#N"),
    ("molvs-14-ylide", "CN(C)c1cc[n+](cc1)[C-](C=C(C#N)C#N)C(=O)N2c3ccccc3Sc4c2cccc4"),
    (
        "molvs-14-salt-soup",
        "OP(=O)(O)[O-].OP(=O)([O-])[O-].[O-]S(=O)(=O)[O-].[Na+].[Na+].[Na+].[Mg+2].[Cl-].[Cl-].[K+].[K+]",
    ),
    ("molvs-21-sodium-thiobarbiturate", "[Na].C(C=C)C1(C(NC(NC1=O)=S)=O)CC1=CC=CC=C1"),
    (
        "symmetric-94-atom-macrocycle",
        "CC(C)(C)OC(=O)N(CCCCCN1CCCN(CCCCCN(Cc2ccccc2)C(=O)OC(C)(C)C)CCN(CCCCCN(Cc2ccccc2)C(=O)OC(C)(C)C)CCCN(CCCCCN(Cc2ccccc2)C(=O)OC(C)(C)C)CC1)Cc1ccccc1",
    ),
    (
        "rdkit-834-boron-cluster-percent-100",
        "[B]1234[B]567[B]89%10[B]%11%12%13[B]%14%15%16[B]%(100)1",
    ),
]

REPORTED_INCHI: list[tuple[str, str]] = [
    (
        "rdkit-3645-inchi-segfault-a",
        "InChI=1S/C9H22O3SSi/c1-5-9-13(14,10-6-2,11-7-3)12-8-4/h5-9H2,1-4H3",
    ),
    (
        "rdkit-3645-inchi-segfault-b",
        "InChI=1S/C8H20O3SSi/c1-5-9-12(13,8-4,10-6-2)11-7-3/h5-8H2,1-4H3",
    ),
    (
        "rdkit-4076-inchi-segfault",
        "InChI=1S/C17H23F3O4/c1-14(2)6-5-11(24-13(22)17(18,19)20)15(3)7-9-8-23-12(21)10(9)16(15,15)4/h9-11H,5-8H2,1-4H3/t9-,10-,11-,14-,16-",
    ),
    (
        "rdkit-1206-inchi-segfault",
        "InChI=1S/C5H12N14O7/c6-1(16-18(23)24)8-10-3(20)12-14-5(22)15-13-4(21)11-9-2(7)17-19(25)26/h(H12-2,6,7,8,9,10,11,12,13,14,15,16,17,20,21,22,23,24,25,26)/p+2",
    ),
    (
        "rdkit-67-inchi-segfault",
        "InChI=1S/C18H17N3/c19-18(20)21-14-17-12-10-16(11-13-17)9-5-4-8-15-6-2-1-3-7-15/h1-3,6-13H,14H2,(H4,19,20,21)/b9-8+",
    ),
    (
        "rdkit-68-inchi-hang-a",
        "InChI=1S/C11H20NSSi2.Li/c1-14(2)8-9-15(3,4)12(14)10-11-6-5-7-13-11;/h6-7H,8-10H2,1-4H3;/q-1;+1",
    ),
    (
        "rdkit-68-inchi-hang-b",
        "InChI=1S/C12H22NSSi2.Li/c1-15(2)10-11-16(3,4)13(15)8-7-12-6-5-9-14-12;/h6,9H,7-8,10-11H2,1-4H3;/q-1;+1",
    ),
    ("rdkit-3192-inchi-range-error", "InChI=1S/C5H14O3SSi/c1-5-9(10,6-2,7-3)8-4/h5H2,1-4H3"),
    (
        "rdkit-6172-inchi-bad-bond-type",
        "InChI=1S/2C18H36N3OP.2CH3.2ClH.Sn/c2*22-23(19-16-10-4-1-5-11-16,20-17-12-6-2-7-13-17)21-18-14-8-3-9-15-18;;;;;/h2*16-18H,1-15H2,(H3,19,20,21,22);2*1H3;2*1H;/q;;2*-1;;;+4/p-2",
    ),
]


def _smiles() -> list[tuple[str, str]]:
    over = MAX_HEAVY_ATOMS + 1
    return [
        # Length and size limits: just under, at and over.
        ("length-at-limit-chain", "C" * MAX_SMILES_LENGTH),
        ("length-over-limit-chain", "C" * (MAX_SMILES_LENGTH + 1)),
        ("length-far-over-limit", "C" * 100_000),
        ("atoms-999-under-char-limit", "C" * 999),
        ("atoms-at-limit", "C" * MAX_HEAVY_ATOMS),
        ("atoms-over-limit", "C" * over),
        ("bracket-atoms-fill-length", _repeat_to("[13CH2]", MAX_SMILES_LENGTH - 7) + "[13CH3]"),
        ("aromatic-atoms-999", "c" * 999),
        ("dots-999", "." * 999),
        ("waters-at-atom-limit", ".".join(["O"] * MAX_HEAVY_ATOMS)),
        ("waters-over-atom-limit", ".".join(["O"] * 333)),
        ("fragments-many-ions", ".".join(["[Na+]", "[Cl-]"] * 75)),
        ("fragments-many-equal-organics", ".".join(["CCO"] * 50)),
        ("fragments-empty-between-dots", "C..C"),
        ("fragments-leading-dot", ".C"),
        ("fragments-trailing-dot", "C."),
        ("long-bracket-symbol", "[" + "C" * 998 + "]"),
        # Rings.
        ("ring-150-aliphatic", "C1" + "C" * (MAX_HEAVY_ATOMS - 1) + "1"),
        ("ring-150-aromatic-huckel", "c1" + "c" * (MAX_HEAVY_ATOMS - 1) + "1"),
        ("ring-149-aromatic-odd", "c1" + "c" * 148 + "1"),
        ("ring-300-over-limit", "C1" + "C" * 299 + "1"),
        ("ring-closure-reused", "C1CC1C1CC1C1CC1"),
        ("ring-closure-to-self", "C11"),
        ("ring-closure-duplicate-bond", "C12CC12"),
        ("ring-closure-adjacent", "C1C1"),
        ("ring-closure-unclosed", "C1CC"),
        ("ring-closure-unclosed-many", "C1C2C3C4C5C6C7C8C9"),
        ("ring-closure-bond-conflict", "C=1CCCC-1"),
        ("ring-closure-percent-00", "C%00CC%00"),
        ("ring-closure-percent-99", "C%99CCC%99"),
        ("ring-closure-extended", "C%(123)CCC%(123)"),
        ("ring-closure-extended-huge", "C%(99999)CC%(99999)"),
        ("ring-closure-extended-overflow", "C%(99999999999999999999)CC%(99999999999999999999)"),
        ("ring-closure-percent-truncated", "C%1CC"),
        ("ring-closure-percent-alone", "C%"),
        ("ring-closure-extended-unterminated", "C%(12CC"),
        ("ring-closures-all-open", "C" + "".join(closure(n) for n in range(1, 100))),
        ("complete-graph-dummy-14", complete_graph("*", 14)),
        ("complete-graph-iron-12", complete_graph("[Fe]", 12)),
        ("complete-graph-uranium-10", complete_graph("[U]", 10)),
        ("grid-dummy-12x12", grid("*", 12, 12)),
        ("grid-dummy-diagonal-10x10", grid("*", 10, 10, diagonal=True)),
        ("grid-aliphatic-carbon-12x12", grid("C", 12, 12)),
        ("hypercube-7-dummy", hypercube(7, "*")),
        ("hypercube-7-iron", hypercube(7, "[Fe]")),
        ("acene-3", acene(3)),
        ("acene-30", acene(30)),
        ("acene-36", acene(36)),
        ("graphene-10x14", graphene(10, 14)),
        ("graphene-12x12", graphene(12, 12)),
        ("nanotube-16-rings", nanotube(4, 10)),
        ("nanotube-17-rings", nanotube(5, 8)),
        ("graphene-16-rings", graphene(5, 10)),
        ("fullerene-c60", C60),
        ("fullerene-c60-aliphatic", C60.upper()),
        ("cubane", "C12C3C4C1C5C2C3C45"),
        (
            "dodecahedrane",
            "C12C3C4C5C1C6C7C8C9C6C%10C7C%11C8C%12C9C%13C%10C%14C%11C%15C%12C%13C%14C2C%15C3C4C5",
        ),
        # Deep branching and bad branches.
        (
            "branches-deep-at-limit",
            "C(" * (MAX_HEAVY_ATOMS - 1) + "C" + ")" * (MAX_HEAVY_ATOMS - 1),
        ),
        ("branches-deep-333", "C(" * 333 + ")" * 333),
        ("branches-open-only", "(" * 999),
        ("branches-close-only", ")" * 999),
        ("branches-empty", "C()C"),
        ("branches-leading", "(C)C"),
        ("branches-nested-empty", "C((((((((C))))))))"),
        ("branches-unbalanced-open", "CC(C"),
        ("branches-unbalanced-close", "CC)C"),
        ("branches-after-ring", "c1cc1))"),
        ("branches-star-of-dummies", "*(" + "*)(".join([""] * 60) + "*)"),
        # Valences and charges.
        ("charge-c-plus-5", "[C+5]"),
        ("charge-n-minus-3", "[N-3]"),
        ("charge-h-plus-alone", "[H+]"),
        ("charge-h-minus-alone", "[H-]"),
        ("hydrogen-atom-alone", "[H]"),
        ("hydrogen-molecule", "[H][H]"),
        ("deuterium-alone", "[2H]"),
        ("charge-many-plus-signs", "[C+++++]"),
        ("charge-huge", "[C+99999999999]"),
        ("charge-plus-15", "[C+15]"),
        ("charge-minus-15", "[O-15]"),
        ("valence-pentavalent-carbon", "C(C)(C)(C)(C)C"),
        ("valence-ch5", "[CH5]"),
        ("valence-hydrogen-count-huge", "[CH99]"),
        ("valence-trivalent-fluorine", "F(F)F"),
        ("valence-nitro-uncharged", "CN(=O)=O"),
        ("valence-perchlorate-hypervalent", "[O-][Cl+3]([O-])([O-])[O-]"),
        ("valence-o-plus-3", "[O+3]"),
        ("charged-zwitterion-chain", "[NH3+]" + "C(C(=O)[O-])" * 40 + "C"),
        ("charged-many-azides", "C" + "(N=[N+]=[N-])" * 3 + "C" * 30 + "(N=[N+]=[N-])" * 2),
        (
            "charged-polyanion",
            "CC(C(=O)[O-])(C(=O)[O-])C(=O)[O-].[Na+].[Na+].[Na+]",
        ),
        ("radical-carbons", "[C][C][C][C]"),
        # Isotopes.
        ("isotope-deuterated-methane", "[2H]C([2H])([2H])[2H]"),
        ("isotope-c13", "[13C]"),
        ("isotope-c999", "[999C]"),
        ("isotope-c0", "[0C]"),
        ("isotope-c65535", "[65535C]"),
        ("isotope-huge", "[99999999999C]"),
        ("isotope-u238", "[238U]"),
        ("isotope-mdma-labelled", "[13CH3]NC(C)Cc1ccc2OCOc2c1"),
        # Aromaticity that cannot be kekulised, and odd aromatic atoms.
        ("aromatic-five-carbons", "c1cccc1"),
        ("aromatic-unclosed", "c1ccccc"),
        ("aromatic-single-atom", "c"),
        ("aromatic-chain", "cccc"),
        ("aromatic-pyrrole-without-h", "n1cccc1"),
        ("aromatic-pyrrole", "[nH]1cccc1"),
        ("aromatic-borinine", "b1ccccc1"),
        ("aromatic-selenophene", "[se]1cccc1"),
        ("aromatic-tellurium", "[te]1cccc1"),
        ("aromatic-bad-fused", "c12ccccc1cccc2c"),
        ("aromatic-benzene", "c1ccccc1"),
        ("aromatic-kekule-cyclobutadiene", "C1=CC=C1"),
        ("aromatic-non-ring-atom", "O(C)c"),
        # Dative bonds.
        ("dative-copper", "N->[Cu+2]"),
        ("dative-cisplatin", "[NH3]->[Pt](<-[NH3])(Cl)Cl"),
        ("dative-carbon-carbon", "C->C"),
        ("dative-oxygen-oxygen", "O->O"),
        ("dative-arrow-dangling", "C->"),
        ("dative-arrow-leading", "<-C"),
        # Metals, salts, unusual elements.
        ("metal-iron-alone", "[Fe]"),
        ("metal-iron-cation", "[Fe+3]"),
        ("metal-ferrocene-ionic", "[Fe+2].c1cc[cH-]c1.c1cc[cH-]c1"),
        ("metal-ferrocene-bonded", "[Fe]12345C6=C1C2=C3C4=C56"),
        ("metal-dimethylmercury", "C[Hg]C"),
        ("metal-tetraethyllead", "CC[Pb](CC)(CC)CC"),
        ("metal-butyllithium", "[Li]CCCC"),
        ("metal-uranyl", "O=[U](=O)=O"),
        ("metal-copper-triangle", "[Cu]1[Cu][Cu]1"),
        ("metal-only-salt", "[Na+].[Cl-]"),
        ("metal-sodium-alone", "[Na]"),
        ("salt-mdma-hydrochloride", "CNC(C)Cc1ccc2OCOc2c1.Cl"),
        ("element-helium", "[He]"),
        ("element-oganesson", "[Og]"),
        ("element-tennessine", "[Ts]"),
        ("element-livermorium-chain", "[Lv][Lv][Lv]"),
        ("element-unknown-uue", "[Uue]"),
        ("element-unknown-xx", "[Xx]"),
        ("element-lowercase-bracket", "[fe]"),
        ("element-dummy-alone", "*"),
        ("element-dummy-bracket", "[*]"),
        ("element-r-group", "[R]"),
        ("element-r1-group", "C[R1]"),
        ("element-deuterium-letter", "[D]"),
        ("element-tritium-letter", "[T]"),
        ("element-dummy-ring", "*1***1"),
        # Bonds and stereo oddities.
        ("bond-double-double", "C==C"),
        ("bond-quadruple", "C$C"),
        ("bond-mixed", "C#=C"),
        ("bond-dangling", "CC="),
        ("bond-leading", "=CC"),
        ("stereo-slash-soup", "C/C=C/C/C=C\\/\\/C"),
        ("stereo-polyene-70", "C" + "/C=C/C" * 35),
        ("stereo-chiral-chain-70", "C" + "[C@H](O)" * 70),
        (
            "stereo-chiral-alternating",
            "C" + "".join("[C@H](F)" if i % 2 else "[C@@H](F)" for i in range(70)),
        ),
        ("stereo-chiral-on-hydrogen", "[H@]"),
        ("stereo-chiral-class-octahedral", "C[Co@OH30](F)(Cl)(Br)(I)N"),
        ("stereo-chiral-class-bad", "C[C@TH9](F)(Cl)Br"),
        ("stereo-chiral-allene", "C[C@]=C=CC"),
        ("atom-map-huge", "[CH4:99999999999]"),
        ("atom-map-on-every-atom", "".join(f"[CH2:{i}]" for i in range(1, 100))),
        # Not SMILES: reactions, SMARTS, CXSMILES, other notations.
        ("reaction-arrow", "CC>>CO"),
        ("reaction-agent", "C>O>N"),
        ("reaction-empty", ">>"),
        ("reaction-mapped", "[CH3:1][OH:2]>>[CH2:1]=[O:2]"),
        ("reaction-greater-than", "C>C"),
        ("smarts-atomic-number", "[#6]"),
        ("smarts-ring-membership", "[C;R]"),
        ("smarts-negation", "[!C]"),
        ("smarts-recursive", "[$(CO)]C"),
        ("smarts-any-bond", "C~C"),
        ("smarts-atom-list", "[C,N]"),
        ("smarts-degree", "[D3]"),
        ("smarts-ring-bond", "C@C"),
        ("smarts-not-ring-bond", "C!@C"),
        ("smarts-and", "[C&H2]"),
        ("smarts-aromatic-bond", "c:c:c"),
        ("cxsmiles-extension", "CC|$a;b$|"),
        ("inchi-in-smiles-field", "InChI=1S/CH4/h1H4"),
        ("inchikey-in-smiles-field", "VNWKTOKETHGBQD-UHFFFAOYSA-N"),
        ("molfile-line", "  6  6  0  0  0  0  0  0  0  0999 V2000"),
        ("name-in-smiles-field", "methamphetamine"),
        ("sql-injection", "C'; DROP TABLE detection; --"),
        ("html-injection", "<script>alert(1)</script>"),
        ("format-string", "%s%s%s%n%x"),
        ("path-traversal", "../../../../etc/passwd"),
        ("json-in-field", '{"smiles": "C"}'),
        # Empty, whitespace, NUL bytes and Unicode lookalikes.
        ("empty", ""),
        ("space", " "),
        ("whitespace-mixed", " \t\n\r "),
        ("whitespace-inside", "C C"),
        ("whitespace-tab-inside", "C\tC"),
        ("whitespace-padded", "  CCO  "),
        ("nbsp-inside", "C\u00a0C"),
        ("nul-alone", "\x00"),
        ("nul-inside", "C\x00C"),
        ("nul-trailing", "CCO\x00"),
        ("control-characters", "C\x01\x02\x1bC"),
        ("del-character", "C\x7fC"),
        ("cyrillic-es-lookalike", "\u0421\u0421O"),
        ("greek-omicron-lookalike", "CC\u039f"),
        ("fullwidth-letters", "\uff23\uff23\uff2f"),
        ("double-struck-c", "\u2102"),
        ("zero-width-space", "C\u200bC"),
        ("zero-width-joiner", "C\u200dC"),
        ("byte-order-mark", "\ufeffCCO"),
        ("right-to-left-override", "CC\u202eO"),
        ("en-dash-bond", "C\u2013C"),
        ("combining-accent", "C\u0301C"),
        ("emoji", "\U0001f480"),
        ("lone-surrogate", "C\ud800C"),
        ("latin1-letters", "C\u00e9C"),
        ("private-use", "C\ue000C"),
        ("escaped-newline-text", "C\\nC"),
        ("backslash-soup", "\\" * 50),
        ("only-digits", "123456789"),
        ("only-percent", "%" * 50),
        ("only-brackets", "[]"),
        ("only-at-signs", "@@@@"),
        ("punctuation-soup", "!@#$%^&*()_+-=[]{}|;:,.<>?/~`"),
    ]


def _inchi() -> list[tuple[str, str]]:
    long_chain = "InChI=1S/C150H302/c1-3-5-7-9" + "".join(f"-{n}" for n in range(11, 300, 2))
    return [
        ("inchi-prefix-only", "InChI="),
        ("inchi-version-only", "InChI=1S"),
        ("inchi-version-slash", "InChI=1S/"),
        ("inchi-formula-only", "InChI=1S/C"),
        ("inchi-water", "InChI=1S/H2O/h1H2"),
        ("inchi-ethanol", "InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3"),
        ("inchi-benzene", "InChI=1S/C6H6/c1-2-4-6-5-3-1/h1-6H"),
        ("inchi-non-standard", "InChI=1/C2H6O/c1-2-3/h3H,2H2,1H3"),
        ("inchi-version-2", "InChI=2S/C2H6O/c1-2-3/h3H,2H2,1H3"),
        ("inchi-lowercase-prefix", "inchi=1S/C2H6O/c1-2-3/h3H,2H2,1H3"),
        ("inchi-charge-huge", "InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3/q+999"),
        ("inchi-protons-huge", "InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3/p-99"),
        ("inchi-stereo-on-achiral", "InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3/t1-,2+,3-/m1/s1"),
        ("inchi-double-bond-stereo-nonsense", "InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3/b1-2+,2-3-"),
        ("inchi-isotope-huge", "InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3/i1+1000"),
        ("inchi-formula-huge", "InChI=1S/C99999H199999"),
        ("inchi-formula-overflow", "InChI=1S/C99999999999999999999"),
        ("inchi-layers-out-of-order", "InChI=1S/CH4/h1H4/c1"),
        ("inchi-connection-to-missing-atom", "InChI=1S/CH4/c1-2-3-4-5/h1H4"),
        ("inchi-connection-self-loop", "InChI=1S/C2H6/c1-1/h1-2H3"),
        ("inchi-hydrogen-overflow", "InChI=1S/C2H6/c1-2/h1-2H99"),
        ("inchi-mobile-h-nonsense", "InChI=1S/C2H6O/c1-2-3/h(H99,1,2,3,4,5)"),
        ("inchi-iron", "InChI=1S/Fe"),
        ("inchi-oganesson", "InChI=1S/Og"),
        ("inchi-unknown-element", "InChI=1S/Xx"),
        ("inchi-empty-layers", "InChI=1S/C2H6O////"),
        (
            "inchi-many-components",
            "InChI=1S/" + ".".join(["H2O"] * 150) + "/h" + ";".join(["1H2"] * 150),
        ),
        ("inchi-multiplier-huge", "InChI=1S/999999H2O/h999999*1H2"),
        ("inchi-long-chain-150", long_chain + "/h1-150H2"),
        ("inchi-just-under-limit", "InChI=1S/" + "C" * (MAX_INCHI_LENGTH - 9)),
        ("inchi-over-limit", "InChI=1S/" + "C" * (MAX_INCHI_LENGTH - 8)),
        ("inchi-far-over-limit", "InChI=1S/" + "C" * 100_000),
        ("inchi-with-whitespace", "InChI=1S/C2H6O/c1-2-3 /h3H,2H2,1H3"),
        ("inchi-with-nul", "InChI=1S/C2H6O/c1-2-3\x00/h3H,2H2,1H3"),
        ("inchi-with-unicode", "InChI=1S/C2H6\u041e/c1-2-3/h3H,2H2,1H3"),
        ("inchi-lone-surrogate", "InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3\ud800"),
        ("inchi-smiles-in-field", "CCO"),
        ("inchi-empty", ""),
        ("inchi-key-in-field", "InChIKey=LFQSCWFLJHTTHZ-UHFFFAOYSA-N"),
        ("inchi-auxinfo", "AuxInfo=1/1/N:3,1,2/rA:3nCCO/rB:s1;s2;/rC:;;;"),
        ("inchi-reconnected-layer", "InChI=1/C2H6O/c1-2-3/h3H,2H2,1H3/r"),
        ("inchi-fixed-h-layer", "InChI=1/C4H5N/c1-2-4-5-3-1/h1-5H/f/h5H"),
        ("inchi-slash-soup", "InChI=" + "/" * 500),
    ]


def corpus() -> list[Hostile]:
    """Every hostile input, SMILES then InChI; ids are unique."""
    entries = [Hostile(i, "smiles", t) for i, t in _smiles() + REPORTED_SMILES + FOUND_SMILES]
    entries += [Hostile(i, "inchi", t) for i, t in _inchi() + REPORTED_INCHI + FOUND_INCHI]
    ids = [entry.id for entry in entries]
    assert len(ids) == len(set(ids)), "corpus ids must be unique"
    return entries


# ---- random strings, for property-based tests ------------------------------------------------

SMILES_TOKENS = [
    *"CNOSPFIBcnosp",
    "Cl",
    "Br",
    "[nH]",
    "[C@@H]",
    "[C@H]",
    "[NH3+]",
    "[O-]",
    "[Fe+2]",
    "[2H]",
    "[13C]",
    "[Na+]",
    "*",
    *"()()=#$:/\\.-+@%[]",
    *"1234567890",
    "%10",
    "%(123)",
    "->",
    "<-",
    ">>",
    "~",
]
INCHI_TOKENS = [
    "InChI=1S/",
    "/c",
    "/h",
    "/q",
    "/p",
    "/t",
    "/m",
    "/s",
    "/b",
    "/i",
    "/f",
    "/r",
    *"CHNOSFClBrI",
    *"0123456789",
    *"-,;()*+.",
    "H2",
    "H3",
]
KNOWN_SMILES = [smiles for group in GROUP_MEMBERS.values() for smiles in group.values()]

smiles_like = st.lists(st.sampled_from(SMILES_TOKENS), max_size=80).map("".join)
inchi_like = st.lists(st.sampled_from(INCHI_TOKENS), max_size=60).map(
    lambda tokens: "InChI=1S/" + "".join(tokens)
)


@st.composite
def mutated_smiles(draw: st.DrawFn) -> str:
    """A real NPS SMILES with a few characters inserted, deleted or replaced."""
    text = draw(st.sampled_from(KNOWN_SMILES))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        token = draw(st.sampled_from(SMILES_TOKENS))
        match draw(st.sampled_from(["insert", "delete", "replace"])):
            case "insert":
                text = text[:position] + token + text[position:]
            case "delete":
                text = text[:position] + text[position + 1 :]
            case _:
                text = text[:position] + token + text[position + 1 :]
    return text
