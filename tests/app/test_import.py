"""Bulk import: same validation as the API, a report of rejected rows, no duplicates on re-run."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli import cli
from app.deps import Principal
from app.detections.importer import import_file
from app.enrichment import Enricher
from app.models import Detection
from app.models.enums import ApiRole
from tests.conftest import make_organisation

HEADER = [
    "smiles",
    "name",
    "detected_on",
    "country",
    "region",
    "sample_type",
    "context",
    "purity_percent",
    "quantity",
    "quantity_unit",
    "co_detected",
    "lab_reference",
]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(**cells: str) -> dict[str, str]:
    base = {
        "smiles": "CC(N)Cc1ccccc1",
        "detected_on": "2026-02-01",
        "country": "DE",
        "sample_type": "seizure",
    }
    base.update(cells)
    return base


def stored(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return session.scalar(select(func.count()).select_from(Detection)) or 0


def test_cli_import_reports_rejected_rows_and_reruns_without_duplicates(
    tmp_path: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with sessions.begin() as session:
        make_organisation(session, "Import Lab")
    path = write_csv(
        tmp_path / "detections.csv",
        [
            row(
                lab_reference="R1",
                quantity="1.5",
                quantity_unit="g",
                co_detected="caffeine;lidocaine",
            ),
            row(smiles="C1CC"),  # line 3: unparsable
            row(country="XX"),  # line 4: unknown country
            row(),  # no lab_reference: content hash
            row(),  # identical row: a second detection
            row(smiles="", name="Unheard-of-9"),  # unidentified name, accepted
            row(purity_percent="200", region="DE-ZZ"),  # line 8: two bad fields
        ],
    )
    monkeypatch.setenv("SENTINEL_DATABASE_URL", database_url)
    runner = CliRunner()

    first = runner.invoke(cli, ["import", "detections", str(path), "--org", "Import Lab"])
    assert first.exit_code == 2, first.output  # some rows rejected
    assert "7 rows: 4 stored, 0 already imported, 3 rejected" in first.output
    report = list(csv.DictReader((tmp_path / "detections.csv.rejected.csv").open()))
    assert {(r["row"], r["field"]) for r in report} == {
        ("3", "substance.smiles"),
        ("4", "country"),
        ("8", "purity_percent"),
        ("8", "region"),
    }
    assert stored(sessions) == 4

    again = runner.invoke(cli, ["import", "detections", str(path), "--org", "Import Lab"])
    assert "7 rows: 0 stored, 4 already imported, 3 rejected" in again.output
    assert stored(sessions) == 4


def test_jsonl_import_uses_api_bodies(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        lab = make_organisation(session, "JSON Lab")
    path = tmp_path / "detections.jsonl"
    lines = [
        json.dumps(
            {
                "substance": {"smiles": "CNC(C)Cc1ccccc1"},
                "detected_on": "2026-01-03",
                "country": "AT",
                "sample_type": "drug_checking",
                "lab_reference": "J1",
            }
        ),
        "{not json",
        json.dumps(
            {
                "substance": {"smiles": "CCO"},
                "detected_on": "2026-01-03",
                "country": "AT",
                "sample_type": "drug_checking",
                "colour": "red",
            }
        ),
    ]
    path.write_text("\n".join(lines) + "\n")
    principal = Principal("cli", "cli", ApiRole.LAB, lab.id)
    result = import_file(sessions, principal, path, Enricher())
    assert (result.total, result.stored, result.rejected_rows) == (3, 1, 2)
    assert {(r.row, r.field) for r in result.rejections} == {(2, "line"), (3, "colour")}


def synthetic_structures(count: int) -> list[str]:
    """Distinct, valid structures: N-alkyl ring-substituted amphetamines and their homologues."""
    substituents = ["", "F", "Cl", "Br", "C", "OC", "CC", "C(F)(F)F", "SC", "OCC"]
    positions = ["c1ccc({})cc1", "c1cccc({})c1", "c1ccccc1{}"]
    structures: list[str] = []
    for chain in range(1, 40):
        for amine in ("N", "NC", "N(C)C", "NCC", "N1CCCC1"):
            for sub in substituents:
                for ring in positions:
                    aryl = ring.format(sub) if sub else "c1ccccc1"
                    structures.append(f"{'C' * chain}C({amine})C{aryl}")
    unique = list(dict.fromkeys(structures))
    assert len(unique) >= count
    return unique[:count]


@pytest.mark.slow
def test_fifty_thousand_row_import_accounts_for_every_row(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        lab = make_organisation(session, "Big Lab")
    rng = random.Random(7)
    structures = synthetic_structures(2000)
    rows = []
    for number in range(50_000):
        if number % 10 == 0:
            cells = row(smiles="", name=f"street name {rng.randrange(300)}")
        else:
            cells = row(smiles=rng.choice(structures))
        cells["detected_on"] = f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        cells["country"] = rng.choice(["DE", "FR", "NL", "PL", "ES"])
        if number % 1000 == 999:
            cells["country"] = "??"  # 50 bad rows
        if number % 3 == 0:
            cells["lab_reference"] = f"BIG-{number}"
        rows.append(cells)
    path = write_csv(tmp_path / "big.csv", rows)
    principal = Principal("cli", "cli", ApiRole.LAB, lab.id)

    result = import_file(sessions, principal, path, Enricher())

    assert result.total == 50_000
    assert result.rejected_rows == 50
    assert result.stored + result.skipped + result.rejected_rows == 50_000
    assert result.skipped == 0
    assert stored(sessions) == result.stored == 49_950
