"""Similarity search benchmark: SimilarityIndex vs RDKit BulkTanimotoSimilarity vs FPSim2.

Run: .venv/bin/python bench/similarity.py [--sizes 100000 1000000] [--queries 8] [--repeats 5]

Library: 100,000 distinct analogues enumerated from NPS scaffold templates (bench/
nps_analogues.py: phenethylamines, cathinones, fentanyls, nitazenes, synthetic cannabinoids,
benzodiazepines, tryptamines, arylcyclohexylamines), fingerprinted with the project's spec.
Sizes above that are reached with noisy copies: each copy of a real fingerprint has 1-8 bits
flipped (half set, half cleared), which keeps the popcount distribution and puts many close
neighbours around every scaffold, as a large casework library would. Queries are NPS that are
not in the library plus two unrelated molecules (the worst case for top-k pruning).
All timings are single-thread, one query at a time, median over queries x repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem, DataStructs, RDLogger

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nps_analogues import analogues

from chemistry.fingerprints import DEFAULT_SPEC, fingerprint
from chemistry.similarity import SimilarityIndex

RDLogger.DisableLog("rdApp.*")

QUERIES = {
    "isotonitazene": "CCN(CC)CCn1c(Cc2ccc(OC(C)C)cc2)nc2cc([N+](=O)[O-])ccc21",
    "5F-MDMB-PICA": "COC(=O)C(NC(=O)c1cn(CCCCCF)c2ccccc12)C(C)(C)C",
    "ocfentanil": "COCC(=O)N(c1ccccc1F)C1CCN(CCc2ccccc2)CC1",
    "alpha-PHiP": "CC(C)CCC(N1CCCC1)C(=O)c1ccccc1",
    "25C-NBOMe": "COc1ccccc1CNCCc1cc(OC)c(Cl)cc1OC",
    "bromazolam": "Cc1nnc2n1-c1ccc(Br)cc1C(c1ccccc1)=NC2",
    "paracetamol (unrelated)": "CC(=O)Nc1ccc(O)cc1",
    "caffeine (unrelated)": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
}


def real_library(count: int) -> np.ndarray:
    rows = []
    for smiles in analogues(count * 2):
        mol = Chem.MolFromSmiles(smiles)
        if mol is not None:
            rows.append(np.frombuffer(fingerprint(mol), dtype=np.uint8))
            if len(rows) == count:
                break
    return np.stack(rows)


def noisy_copies(real: np.ndarray, total: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((total, real.shape[1]), dtype=np.uint8)
    out[: len(real)] = real
    for start in range(len(real), total, len(real)):
        stop = min(total, start + len(real))
        block = np.unpackbits(real[: stop - start], axis=1, bitorder="little")
        for row in range(len(block)):
            flips = rng.integers(1, 9)
            on = np.flatnonzero(block[row])
            off = rng.integers(0, block.shape[1], size=flips - flips // 2)
            block[row, rng.choice(on, size=min(flips // 2, len(on)), replace=False)] = 0
            block[row, off] = 1
        out[start:stop] = np.packbits(block, axis=1, bitorder="little")
    return out


def bitvect(packed: np.ndarray) -> DataStructs.ExplicitBitVect:
    vector = DataStructs.ExplicitBitVect(DEFAULT_SPEC.n_bits)
    vector.SetBitsFromList(np.flatnonzero(np.unpackbits(packed, bitorder="little")).tolist())
    return vector


def fpsim2_engine(packed: np.ndarray, directory: Path) -> Any:
    """FPSim2's in-memory engine over the same fingerprints (its file written directly)."""
    try:
        from importlib.metadata import version

        import tables as tb
        from FPSim2 import FPSim2Engine
        from FPSim2.io.backends.pytables import create_schema, sort_db_file
        from FPSim2.io.chem import FP_FUNC_DEFAULTS
    except ImportError as error:
        print(f"FPSim2 column skipped: {error} (pip install fpsim2 to compare)")
        return None
    import rdkit

    path = str(directory / "fpsim2.h5")
    # FPSim2 packs bit i into word i // 64 at position 63 - i % 64 (big-endian bit order)
    words = np.empty((len(packed), packed.shape[1] // 8), dtype=np.uint64)
    for start in range(0, len(packed), 65536):
        bits = np.unpackbits(packed[start : start + 65536], axis=1, bitorder="little")
        words[start : start + 65536] = np.packbits(bits, axis=1, bitorder="big").view(">u8")
    params = dict(
        FP_FUNC_DEFAULTS["Morgan"], radius=DEFAULT_SPEC.radius, fpSize=DEFAULT_SPEC.n_bits
    )
    with tb.open_file(path, mode="w") as handle:
        table = handle.create_table(
            handle.root,
            "fps",
            create_schema(DEFAULT_SPEC.n_bits),
            filters=tb.Filters(complib="blosc2", complevel=1),
        )
        config = handle.create_vlarray(handle.root, "config", atom=tb.ObjectAtom())
        for item in ("Morgan", params, rdkit.__version__, version("FPSim2")):
            config.append(item)
        rows = np.zeros(len(packed), dtype=table.dtype)
        rows["fp_id"] = np.arange(len(packed))
        for column in range(words.shape[1]):
            rows[f"f{column + 1}"] = words[:, column]
        rows["popcnt"] = np.bitwise_count(words).sum(axis=1)
        table.append(rows)
        table.cols.popcnt.create_index(kind="full")
    sort_db_file(path)
    return FPSim2Engine(path)


def median_ms(function: Callable[[], object], repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench(size: int, library: np.ndarray, queries: dict[str, np.ndarray], repeats: int) -> None:
    keys = [f"MOLECULE-{i:010d}-KEY-027" for i in range(size)]  # InChIKey-sized keys
    start = time.perf_counter()
    index = SimilarityIndex()
    index.add(keys, library)
    build = time.perf_counter() - start
    vectors = [bitvect(row) for row in library]
    with tempfile.TemporaryDirectory() as directory:
        engine = fpsim2_engine(library, Path(directory))
        results: dict[str, list[float]] = {}
        for name, query in queries.items():
            qbytes, qvect = query.tobytes(), bitvect(query)

            def rdkit_top10(qvect: object = qvect) -> object:
                sims = np.array(DataStructs.BulkTanimotoSimilarity(qvect, vectors))
                return np.argpartition(-sims, 10)[:10]

            def rdkit_threshold(qvect: object = qvect) -> object:
                sims = np.array(DataStructs.BulkTanimotoSimilarity(qvect, vectors))
                return np.flatnonzero(sims >= 0.7)

            cases: dict[str, Callable[[], object]] = {
                "top10 ours": partial(index.top_k, qbytes, 10),
                "top10 rdkit": rdkit_top10,
                "thr0.7 ours": partial(index.threshold, qbytes, 0.7),
                "thr0.7 rdkit": rdkit_threshold,
            }
            if engine is not None:
                cases["top10 fpsim2"] = partial(engine.top_k, qvect, k=10, threshold=0.0)
                cases["thr0.7 fpsim2"] = partial(engine.similarity, qvect, 0.7)
            ours = {hit.key for hit in index.threshold(qbytes, 0.7)}
            if engine is not None:
                theirs = {keys[int(i)] for i in engine.similarity(qvect, 0.7)["mol_id"]}
                assert ours == theirs, f"threshold results differ from FPSim2 for {name}"
            for case, function in cases.items():
                results.setdefault(case, []).append(median_ms(function, repeats))
        fpsim2_mb = engine.fps.nbytes / 1e6 if engine is not None else float("nan")
    print(
        f"\n## {size:,} fingerprints (index built in {build:.1f} s; "
        f"index {index.nbytes / 1e6:.0f} MB, FPSim2 {fpsim2_mb:.0f} MB)"
    )
    print(
        f"{'search':8} {'ours ms':>9} {'rdkit ms':>9} {'fpsim2 ms':>10} "
        f"{'rdkit/ours':>11} {'fpsim2/ours':>12}"
    )
    for kind in ("top10", "thr0.7"):
        ours = statistics.median(results[f"{kind} ours"])
        rdkit_ms = statistics.median(results[f"{kind} rdkit"])
        fpsim2 = statistics.median(results.get(f"{kind} fpsim2", [float("nan")]))
        print(
            f"{kind:8} {ours:9.2f} {rdkit_ms:9.2f} {fpsim2:10.2f} "
            f"{rdkit_ms / ours:10.1f}x {fpsim2 / ours:11.1f}x"
        )
    worst = max(results["top10 ours"])
    print(
        f"slowest query, top10 ours: {worst:.2f} ms (per-query medians: "
        + ", ".join(f"{v:.1f}" for v in results["top10 ours"])
        + ")"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--real", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    real = real_library(args.real)
    print(
        f"enumerated and fingerprinted {len(real):,} analogues in "
        f"{time.perf_counter() - start:.0f} s; spec {DEFAULT_SPEC.key}"
    )
    everything = noisy_copies(real, max(args.sizes))
    queries = {
        name: np.frombuffer(fingerprint(Chem.MolFromSmiles(smiles)), dtype=np.uint8)
        for name, smiles in QUERIES.items()
    }
    for size in args.sizes:
        bench(size, everything[:size], queries, args.repeats)


if __name__ == "__main__":
    main()
