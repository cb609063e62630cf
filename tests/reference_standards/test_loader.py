"""Loading the library into the database: idempotent upsert; removed substances are retired."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import cli
from app.db import make_engine, make_sessionmaker
from app.enrichment import resolve_name
from app.migrate import upgrade
from app.models import Substance
from app.substances.loader import load_library_into
from reference_standards import load_library
from tests.reference_standards.test_library import row, write_library


def test_load_is_idempotent_and_retires_removed_substances(
    fresh_database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(fresh_database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    amphetamine = row("Amphetamine", "CC(N)Cc1ccccc1", "C9H13N", synonyms="Speed")
    methamphetamine = row("Methamphetamine", "CNC(C)Cc1ccccc1", "C10H15N", synonyms="Meth")
    folder = write_library(tmp_path / "v1", amphetamine, methamphetamine)

    with sessions.begin() as session:
        first = load_library_into(session, load_library(folder))
    with sessions.begin() as session:
        second = load_library_into(session, load_library(folder))
    assert (first.added, first.updated, first.unchanged, first.retired) == (2, 0, 0, 0)
    assert (second.added, second.updated, second.unchanged, second.retired) == (0, 0, 2, 0)

    renamed = row("Amfetamine", "CC(N)Cc1ccccc1", "C9H13N", synonyms="Speed|Amphetamine")
    with sessions.begin() as session:
        third = load_library_into(session, load_library(write_library(tmp_path / "v2", renamed)))
    assert (third.added, third.updated, third.unchanged, third.retired) == (0, 1, 0, 1)
    with sessions.begin() as session:
        substances = {s.inchikey: s for s in session.scalars(select(Substance))}
        assert len(substances) == 2  # retired, not deleted
        meth = substances["MYWUZJCMWCOHBA-UHFFFAOYSA-N"]
        assert meth.retired_at is not None
        assert resolve_name(session, "meth") is None  # retired names no longer resolve
        found = resolve_name(session, "AMFETAMINE")
        assert found is not None
        assert found.name == "Amfetamine"
    engine.dispose()


def test_cli_check_fails_with_a_report(tmp_path: Path) -> None:
    folder = write_library(tmp_path, row("Broken", "CC(N", "C2H5N"))
    result = CliRunner().invoke(cli, ["references", "check", "--dir", str(folder)])
    assert result.exit_code == 1
    assert "Broken: SMILES does not parse" in result.output


def test_cli_check_passes_on_the_shipped_library() -> None:
    result = CliRunner().invoke(cli, ["references", "check"])
    assert result.exit_code == 0, result.output
    assert "0 problems" in result.output
