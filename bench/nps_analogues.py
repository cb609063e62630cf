"""Enumerate realistic NPS analogues from scaffold templates, for the benchmarks.

Each family is a SMILES template whose slots take substituents seen on the drug market (ring
halogens, alkyls, alkoxys, N-alkyls, tails, heads). The full products run to millions;
`analogues(n)` draws a deterministic sample (seeded), round-robin over the families. Ring
closure digits are unique per slot (%81-%89) so that fragments nest safely.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator

RING = ["", "", "", "F", "Cl", "Br", "I", "C", "CC", "OC", "OCC", "SC", "C(F)(F)F", "O", "C#N"]


def _aryl(rng: random.Random, choices: list[str] = RING, positions: int = 4) -> str:
    """A phenyl written from its attachment atom, substituents at positions 2 to 5."""
    subs = [rng.choice(choices) for _ in range(positions)] + [""] * (4 - positions)
    return "c%81" + "".join(f"c({s})" if s else "c" for s in subs) + "c%81"


AMINES = ["N", "CN", "CCN", "CCCN", "CC(C)N", "CN(C)", "CCN(CC)", "C%82CCCN%82", "C%82CCCCN%82"]
ALPHA = ["", "(C)", "(CC)", "(CCC)", "(CCCC)"]
OTHER_ARYL = [
    "c%81ccc%84OCOc%84c%81",
    "c%81ccc%84occc%84c%81",
    "c%81ccc%84CCOc%84c%81",
    "c%81cccs%81",
    "c%81ccc%84ccccc%84c%81",
]


def _phenethylamine(rng: random.Random) -> str:
    amine, alpha = rng.choice(AMINES), rng.choice(ALPHA)
    beta = rng.choice(["C", "C", "C(=O)", "C(O)"])
    aryl = _aryl(rng) if rng.random() < 0.8 else rng.choice(OTHER_ARYL)
    return f"{amine}C{alpha}{beta}{aryl}"


ACYLS = [
    "CC",
    "CCC",
    "CCCC",
    "CC(C)C",
    "C=C",
    "COC",
    "o%83cccc%83",
    "C%83CC%83",
    "C%83CCC%83",
    "c%83ccccc%83",
    "C(C)(C)C",
    "CCCCC",
]


def _fentanyl(rng: random.Random) -> str:
    aniline = _aryl(rng, ["", "", "", "F", "Cl", "C", "OC"], 4)
    tail = _aryl(rng, ["", "", "", "F", "Cl", "O", "C"], 4) if rng.random() < 0.8 else "c%81cccs%81"
    beta = rng.choice(["", "", "(O)", "(C)"])
    ring = rng.choice(
        [
            "C%85CCN(CC{b}{t})CC%85",
            "C%85CCN(CC{b}{t})CC%85C",
            "C%85(C(=O)OC)CCN(CC{b}{t})CC%85",
            "C%85(COC)CCN(CC{b}{t})CC%85",
        ]
    )
    return f"{rng.choice(ACYLS)}C(=O)N({aniline})" + ring.format(b=beta, t=tail)


def _nitazene(rng: random.Random) -> str:
    para = rng.choice(["OC", "OCC", "OCCC", "OC(C)C", "OCCCC", "F", "Cl", "", "SC", "C", "Br"])
    five = rng.choice(["[N+](=O)[O-]", "[N+](=O)[O-]", "", "C#N", "F", "C(F)(F)F", "Cl"])
    amine = rng.choice(
        [
            "N(CC)CC",
            "N%86CCCC%86",
            "N%86CCCCC%86",
            "NCC",
            "N(C)CC",
            "N%86CCOCC%86",
            "N(C)C",
            "N(CCC)CCC",
        ]
    )
    benzyl = f"c%81ccc({para})cc%81" if para else "c%81ccccc%81"
    five_atom = f"c({five})" if five else "c"
    return f"{benzyl}Cc%85nc%87c{five_atom}ccc%87n%85CC{amine}"


TAILS = [
    "CCCCC",
    "CCCCCF",
    "CCCC=C",
    "CCCC",
    "Cc%81ccc(F)cc%81",
    "CC%81CCCCC%81",
    "CCCCC#N",
    "CCCCCC",
    "CC%81CCOCC%81",
    "CCCCCCl",
    "CC%81CCC%81",
    "CCCC(F)(F)F",
]
HEADS = [
    "O=C(NC(C(N)=O)C(C)C)",
    "O=C(NC(C(N)=O)C(C)(C)C)",
    "O=C(NC(C(=O)OC)C(C)(C)C)",
    "O=C(NC(C(=O)OC)C(C)C)",
    "O=C(NC(C)(C)c%82ccccc%82)",
    "O=C(NC%82CC%83CC(CC(C%83)C%82)C%82)",
    "O=C(c%82cccc%83ccccc%82%83)",
    "O=C(C%82C(C)(C)C%82(C)C)",
    "O=C(Oc%82cccc%83cccnc%82%83)",
    "O=C(NC(C(=O)OCC)C(C)(C)C)",
    "O=C(Nc%82cccc%83ccccc%82%83)",
    "O=C(Cc%82ccccc%82OC)",
]


def _cannabinoid(rng: random.Random) -> str:
    tail, head = rng.choice(TAILS), rng.choice(HEADS)
    head = head.replace("C%82CC%83CC(CC(C%83)C%82)C%82", "C%82%88CC%83CC(CC(C%83)C%82)C%88")
    core = rng.choice(
        [
            "c%85cn({t})c%86ccccc%85%86",
            "c%85nn({t})c%86ccccc%85%86",
            "c%85cn({t})c%86ncccc%85%86",
            "c%85cn({t})c%86ccc(F)cc%85%86",
            "c%85nn({t})c%86ccc(Br)cc%85%86",
            "c%85nn({t})c%86ccc(F)cc%85%86",
        ]
    )
    return head + core.format(t=tail)


def _benzodiazepine(rng: random.Random) -> str:
    seven = rng.choice(["Cl", "Br", "[N+](=O)[O-]", "F", "C", "C(F)(F)F", "I"])
    two = rng.choice(["", "F", "Cl", "Br", ""])
    phenyl = (
        f"c%81ccccc%81{two}"
        if not two
        else f"c%81ccccc%81{two}".replace("c%81ccccc%81" + two, f"c%81c({two})cccc%81")
    )
    ring = rng.choice(
        [
            "CN%85C(=O)CN=C({p})c%86cc({s})ccc%86%85",
            "O=C%85CN=C({p})c%86cc({s})ccc%86N%85",
            "Cc%85nnc%86n%85-c%85ccc({s})cc%85C({p})=NC%86",
            "CCc%85nnc%86n%85-c%85ccc({s})cc%85C({p})=NC%86",
            "Cc%85ncc%86n%85-c%85ccc({s})cc%85C({p})=NC%86",
            "O=C%85Nc%86ccc({s})cc%86C({p})=NC%85O",
            "CN%85C(=O)C(O)N=C({p})c%86cc({s})ccc%86%85",
            "CN%85C(=O)C(C)N=C({p})c%86cc({s})ccc%86%85",
        ]
    )
    return ring.format(p=phenyl, s=seven)


def _tryptamine(rng: random.Random) -> str:
    four = rng.choice(["", "", "O", "OC(C)=O", "OP(=O)(O)O", "OC(=O)CC", "OC"])
    five = "" if four else rng.choice(["", "OC", "F", "C", "Br", "O"])
    amine = rng.choice(
        [
            "CN(C)",
            "CCN(CC)",
            "CN(C(C)C)",
            "CCCN(CCC)",
            "CN(CCC)",
            "C%82CCCN%82",
            "CC(C)N(C(C)C)",
            "C=CCN(CC=C)",
            "N",
            "CN",
            "CCCCN(CCCC)",
        ]
    )
    alpha = rng.choice(["", "", "(C)", "(CC)"])
    c5 = f"c({five})" if five else "c"
    c4 = f"c({four})" if four else "c"
    return f"{amine}C{alpha}Cc%85c[nH]c%86cc{c5}{c4}c%85%86"


def _arylcyclohexylamine(rng: random.Random) -> str:
    aryl = (
        _aryl(rng, ["", "", "F", "Cl", "Br", "C", "OC", "O"], 2)
        if rng.random() < 0.85
        else ("c%81cccs%81")
    )
    amine = rng.choice(
        ["CN", "CCN", "CCCN", "C%82CCCCN%82", "C%82CCCN%82", "C%82COCCN%82", "N", "CC(C)N"]
    )
    ring = rng.choice(["C%85({a})CCCCC%85=O", "C%85({a})CCCCC%85", "C%85({a})CCC(O)CC%85"])
    return amine + ring.format(a=aryl)


FAMILIES: tuple[Callable[[random.Random], str], ...] = (
    _phenethylamine,
    _phenethylamine,
    _fentanyl,
    _nitazene,
    _cannabinoid,
    _cannabinoid,
    _benzodiazepine,
    _tryptamine,
    _arylcyclohexylamine,
)


def analogues(count: int, seed: int = 0) -> Iterator[str]:
    """Up to `count` distinct SMILES strings, deterministic for a seed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    for family in itertools.cycle(FAMILIES):
        if len(seen) >= count:
            return
        for _ in range(50):  # a family can saturate; try a few draws, then move on
            smiles = family(rng)
            if smiles not in seen:
                seen.add(smiles)
                yield smiles
                break
