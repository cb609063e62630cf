"""SimilarityIndex: exact Tanimoto search, incremental, persistent, spec-bound."""

import random
from pathlib import Path

import numpy as np
import pytest
from rdkit import DataStructs
from rdkit.Chem import rdFingerprintGenerator

import chemistry.similarity as similarity_module
from chemistry.errors import SpecMismatchError
from chemistry.fingerprints import FingerprintSpec, fingerprint
from chemistry.similarity import Hit, SimilarityIndex
from chemistry.structures import parse, standardise
from tests.chemistry.named import GROUP_MEMBERS

NAMED = {name: smiles for members in GROUP_MEMBERS.values() for name, smiles in members.items()}
MOLS = {name: standardise(parse(smiles)) for name, smiles in NAMED.items()}
FPS = {name: fingerprint(mol) for name, mol in MOLS.items()}


def _noisy_library(size: int, seed: int = 7) -> dict[str, bytes]:
    """Named fingerprints plus copies with a few bits flipped: many near-ties, many levels."""
    rng = random.Random(seed)
    names = sorted(FPS)
    library = dict(FPS)
    for i in range(size):
        data = bytearray(FPS[names[i % len(names)]])
        for _ in range(rng.randint(0, 12)):
            bit = rng.randrange(2048)
            data[bit // 8] ^= 1 << (bit % 8)
        library[f"variant-{i:05d}"] = bytes(data)
    return library


def _brute_force(library: dict[str, bytes], query: bytes) -> list[tuple[float, str]]:
    def vector(data: bytes) -> DataStructs.ExplicitBitVect:
        bits = np.flatnonzero(np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little"))
        out = DataStructs.ExplicitBitVect(2048)
        out.SetBitsFromList([int(b) for b in bits])
        return out

    keys = list(library)
    sims = DataStructs.BulkTanimotoSimilarity(vector(query), [vector(library[k]) for k in keys])
    return sorted((s, k) for s, k in zip(sims, keys, strict=True) if s > 0)[::-1]


def _index(library: dict[str, bytes]) -> SimilarityIndex:
    index = SimilarityIndex()
    index.add(list(library), list(library.values()))
    return index


def test_packed_bits_are_rdkits_morgan_bits() -> None:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    expected = list(generator.GetFingerprint(MOLS["fentanyl"]).GetOnBits())
    packed = np.unpackbits(np.frombuffer(FPS["fentanyl"], np.uint8), bitorder="little")
    assert list(np.flatnonzero(packed)) == expected


def test_the_spec_key_names_kind_radius_size_and_rdkit_version() -> None:
    spec = FingerprintSpec(rdkit_version="2026.09.1")
    assert spec.key == "morgan-r2-2048@2026.09.1"


def test_fingerprinting_with_another_rdkit_versions_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="rebuild"):
        fingerprint(MOLS["fentanyl"], FingerprintSpec(rdkit_version="2019.03.1"))


SEARCH_PATHS = {  # (_SMALL_ROWS, _TREE_WORDS): which code answers a query
    "row-popcount": (1 << 20, 0),
    "bit-sliced-ripple-adder": (0, 0),
    "bit-sliced-tree-adder": (0, 1 << 20),
}


@pytest.mark.parametrize("path", sorted(SEARCH_PATHS))
@pytest.mark.parametrize("query", ["fentanyl", "MDMA", "JWH-018", "diazepam"])
def test_top_k_and_threshold_equal_rdkit_brute_force(
    monkeypatch: pytest.MonkeyPatch, path: str, query: str
) -> None:
    small_rows, tree_words = SEARCH_PATHS[path]
    monkeypatch.setattr(similarity_module, "_SMALL_ROWS", small_rows)
    monkeypatch.setattr(similarity_module, "_TREE_WORDS", tree_words)
    library = _noisy_library(1500)
    index = _index(library)
    expected = _brute_force(library, FPS[query])
    # ranked by similarity, ties broken by key
    expected_order = sorted(expected, key=lambda pair: (-pair[0], pair[1]))

    top = index.top_k(FPS[query], 10)
    assert [hit.key for hit in top] == [key for _, key in expected_order[:10]]
    assert [hit.similarity for hit in top] == pytest.approx([s for s, _ in expected_order[:10]])
    above = index.threshold(FPS[query], 0.7)
    assert [hit.key for hit in above] == [key for s, key in expected_order if s >= 0.7]


def test_top_k_ranks_the_n_methyl_analogue_first() -> None:
    index = _index(
        {
            "caffeine": fingerprint(parse("Cn1cnc2c1c(=O)n(C)c(=O)n2C")),
            "amphetamine": FPS["amphetamine"],
        }
    )
    hits = index.top_k(fingerprint(parse("CNC(C)Cc1ccccc1")), 2)
    assert [hit.key for hit in hits] == ["amphetamine", "caffeine"]
    assert hits[0].similarity > hits[1].similarity


def test_equal_similarities_are_ordered_by_key() -> None:
    index = SimilarityIndex()
    index.add(["b", "c", "a"], [FPS["MDMA"]] * 3)
    assert index.top_k(FPS["MDMA"], 2) == [Hit("a", 1.0), Hit("b", 1.0)]


def test_fingerprints_added_later_are_found() -> None:
    index = SimilarityIndex()
    index.add(["ketamine"], [FPS["ketamine"]])
    assert index.top_k(FPS["PCP"], 1)[0].key == "ketamine"
    index.add(["PCP", "3-MeO-PCP"], [FPS["PCP"], FPS["3-MeO-PCP"]])
    assert len(index) == 3
    assert index.top_k(FPS["PCP"], 1) == [Hit("PCP", 1.0)]


@pytest.mark.parametrize("small_rows", [0, 1 << 20], ids=["bit-sliced", "row-popcount"])
def test_incremental_adds_across_blocks_equal_one_bulk_add(
    monkeypatch: pytest.MonkeyPatch, small_rows: int
) -> None:
    monkeypatch.setattr(similarity_module, "_SMALL_ROWS", small_rows)
    monkeypatch.setattr(similarity_module, "BLOCK", 256)
    monkeypatch.setattr(similarity_module, "_BLOCK_WORDS", 4)
    library = _noisy_library(900)
    bulk = _index(library)
    pieces = SimilarityIndex()
    keys = list(library)
    start = 0
    for size in (1, 3, 60, 200, 255, 1, 2000):
        pieces.add(keys[start : start + size], [library[k] for k in keys[start : start + size]])
        start += size
    assert len(pieces) == len(bulk) == len(library)
    for query in ("fentanyl", "LSD"):
        assert pieces.top_k(FPS[query], 25) == bulk.top_k(FPS[query], 25)
        assert pieces.threshold(FPS[query], 0.5) == bulk.threshold(FPS[query], 0.5)


@pytest.mark.parametrize("small_rows", [0, 1 << 20], ids=["bit-sliced", "row-popcount"])
def test_save_and_load_round_trip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, small_rows: int
) -> None:
    monkeypatch.setattr(similarity_module, "_SMALL_ROWS", small_rows)
    index = _index(_noisy_library(300))
    path = tmp_path / "references.index"
    index.save(path)
    loaded = SimilarityIndex.load(path)
    assert len(loaded) == len(index)
    assert loaded.keys() == index.keys()
    assert loaded.top_k(FPS["etizolam"], 10) == index.top_k(FPS["etizolam"], 10)
    loaded.add(["new"], [FPS["etizolam"]])
    assert Hit("new", 1.0) in loaded.threshold(FPS["etizolam"], 1.0)


def test_loading_an_index_built_with_another_spec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.index"
    _index({"MDMA": FPS["MDMA"]}).save(path)
    with pytest.raises(SpecMismatchError):
        SimilarityIndex.load(path, FingerprintSpec(rdkit_version="2019.03.1"))


def test_an_empty_index_and_a_wrong_length_query() -> None:
    index = SimilarityIndex()
    assert index.top_k(FPS["MDMA"], 5) == []
    assert index.threshold(FPS["MDMA"], 0.1) == []
    index.add(["MDMA"], [FPS["MDMA"]])
    with pytest.raises(ValueError, match="bytes"):
        index.top_k(b"\x00" * 8, 1)


def test_memory_is_the_packed_fingerprints_plus_small_overheads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(similarity_module, "_SMALL_ROWS", 0)
    index = _index(_noisy_library(2000))
    fingerprint_bytes = len(index) * 256
    assert fingerprint_bytes <= index.nbytes <= 1.6 * fingerprint_bytes + 300_000
