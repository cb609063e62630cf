"""`sentinel analyse`: the chemistry pipeline over a file, one JSON object per input line."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TextIO

from chemistry.analysis import Analyser, Reference
from reference_standards import load_library

_ANALYSER: Analyser | None = None
CHUNK = 256


def references_from_library() -> list[Reference]:
    """References straight from the data files: `analyse` needs no database."""
    return load_library().references()


def _init_worker() -> None:
    global _ANALYSER
    _ANALYSER = Analyser(references_from_library())


def _analyse_chunk(lines: list[str]) -> list[dict[str, Any]]:
    assert _ANALYSER is not None
    results = []
    for line in lines:
        fmt = "inchi" if line.startswith("InChI=") else "smiles"
        results.append(_ANALYSER.analyse(line, fmt).to_dict())
    return results


def read_inputs(handle: TextIO) -> list[str]:
    """One SMILES or InChI per line, or a CSV with a `smiles` column."""
    text = handle.read()
    first = text.split("\n", 1)[0]
    if "," in first and "smiles" in [c.strip().lower() for c in first.split(",")]:
        reader = csv.DictReader(io.StringIO(text))
        column = next(c for c in reader.fieldnames or [] if c.strip().lower() == "smiles")
        return [(row.get(column) or "").strip() for row in reader]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _chunks(lines: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(lines), CHUNK):
        yield lines[start : start + CHUNK]


def run(inputs: list[str], out: TextIO, err: TextIO, *, jobs: int = 1) -> int:
    """Analyse every input, writing JSON lines in input order; returns the count of errors."""
    started = time.monotonic()
    done = errors = 0
    total = len(inputs)

    def report() -> None:
        rate = done / max(time.monotonic() - started, 1e-6)
        width = 30
        filled = int(width * done / total) if total else width
        err.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:6.0f}/s")
        err.flush()

    def emit(results: list[dict[str, Any]]) -> None:
        nonlocal done, errors
        for result in results:
            out.write(json.dumps(result) + "\n")
            errors += result["error"] is not None
        done += len(results)
        report()

    if jobs <= 1:
        _init_worker()
        for chunk in _chunks(inputs):
            emit(_analyse_chunk(chunk))
    else:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker) as pool:
            for results in pool.map(_analyse_chunk, _chunks(inputs)):
                emit(results)
    err.write("\n")
    return errors


def main(source: str, jobs: int) -> int:
    if source == "-":
        inputs = read_inputs(sys.stdin)
    else:
        with open(source, encoding="utf-8") as handle:
            inputs = read_inputs(handle)
    return run(inputs, sys.stdout, sys.stderr, jobs=jobs)
