"""Pipeline benchmark: structures per second through steps 1-7 on one core, time per step.

Run: .venv/bin/python bench/analyse.py [--structures 3000]

References: the project's reference library (reference_standards/data). Inputs: analogues
enumerated from NPS scaffolds (bench/nps_analogues.py, seed 1, so mostly not in the
library), each written as a hydrochloride to exercise salt stripping. Clustering assigns each
input against a representatives index that grows as the pipeline opens clusters. Each step
is the same call the Analyser makes (Analyser.analyse_mol), timed separately.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nps_analogues import analogues

from chemistry.analysis import Analyser
from chemistry.clustering import assign
from chemistry.fingerprints import fingerprint
from chemistry.generic_definitions import generic_definitions
from chemistry.similarity import SimilarityIndex
from chemistry.structures import identify, parse, standardise
from reference_standards import load_library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=int, default=3000)
    args = parser.parse_args()
    library = load_library()
    start = time.perf_counter()
    analyser = Analyser(library.references())
    print(
        f"Analyser over {len(library.records)} references built in "
        f"{time.perf_counter() - start:.2f} s"
    )
    inputs = [f"{smiles}.Cl" for smiles in analogues(args.structures, seed=1)]
    representatives = SimilarityIndex()
    spent: dict[str, float] = defaultdict(float)
    clock = time.perf_counter
    errors = 0
    total_start = clock()
    for text in inputs:
        t0 = clock()
        try:
            mol = parse(text)
        except ValueError:
            errors += 1
            continue
        t1 = clock()
        parent = standardise(mol)
        t2 = clock()
        identity = identify(parent)
        t3 = clock()
        query = fingerprint(parent, analyser.spec)
        t4 = clock()
        match = analyser.references.get(identity.inchikey)
        analyser.nearest(query)
        analyser.analogues(query, identity.inchikey)
        t5 = clock()
        group, _ = analyser.classify(parent, match)
        t6 = clock()
        analyser.effect(query, group, match)
        t7 = clock()
        generic_definitions(parent)
        t8 = clock()
        if assign(query, representatives) is None:
            representatives.add([f"{len(representatives):09d}"], [query])
        t9 = clock()
        for step, seconds in (
            ("1 parse + input limits", t1 - t0),
            ("2 standardise", t2 - t1),
            ("3 identify (InChI, key, formula)", t3 - t2),
            ("4a fingerprint", t4 - t3),
            ("4b match: exact, nearest 5, analogues", t5 - t4),
            ("5a chemical group (SMARTS)", t6 - t5),
            ("5b effect group (k-NN)", t7 - t6),
            ("6 generic definitions", t8 - t7),
            ("7 cluster assignment", t9 - t8),
        ):
            spent[step] += seconds
    wall = clock() - total_start
    done = len(inputs) - errors
    print(
        f"{done} structures ({errors} unparsable) in {wall:.2f} s on one core: "
        f"{done / wall:,.0f} structures/s, {wall / done * 1000:.2f} ms each; "
        f"{len(representatives)} clusters opened"
    )
    steps = sum(spent.values())
    print(f"{'step':40} {'ms/structure':>13} {'share':>7}")
    for step, seconds in sorted(spent.items()):
        print(f"{step:40} {seconds / done * 1000:13.3f} {seconds / steps:7.1%}")
    start = clock()
    for text in inputs[:500]:
        analyser.analyse(text)
    print(
        f"Analyser.analyse end to end (steps 1-6, no clustering): "
        f"{(clock() - start) / 500 * 1000:.2f} ms/structure"
    )


if __name__ == "__main__":
    main()
