"""Analyses of submitted structures, shared through the database.

Each API process keeps the analyses it ran in memory (the Enricher's cache), but several
processes behind one database, and a process after a restart, would each run RDKit again on
the same structures (about 5 ms each, and labs report the same few thousand again and again).
So an analysis is also stored, in the transaction that stores the first detection carrying it,
and read back by the others before they run the chemistry.

A stored analysis is used only by the same pipeline: the same reference library content, the
same chemistry code (a digest of chemistry/*.py), the same RDKit and record format. A row is
looked up by the SHA-256 of the submitted text and used only if it holds that very text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path

import rdkit
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.db import utc_now
from app.models import StoredAnalysis
from chemistry.analysis import Analysis, Reference
from chemistry.records import RECORD_VERSION, from_record, to_record

RETENTION = timedelta(days=30)  # a row older than this is purged; it is re-stored when needed
Key = tuple[str, str]  # (input type, submitted text)


def _chemistry_digest() -> str:
    sources = sorted((Path(__file__).resolve().parents[1] / "chemistry").glob("*.py"))
    digest = hashlib.sha256(f"rdkit {rdkit.__version__}; record {RECORD_VERSION}".encode())
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


CHEMISTRY_DIGEST = _chemistry_digest()


def pipeline_key(references_digest: str) -> str:
    return hashlib.sha256(f"{references_digest}:{CHEMISTRY_DIGEST}".encode()).hexdigest()


def input_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load(
    session: Session, pipeline: str, keys: Iterable[Key], references: Mapping[str, Reference]
) -> dict[Key, Analysis]:
    """The stored analyses of these inputs, made by this pipeline."""
    wanted = {(kind, input_hash(text)): (kind, text) for kind, text in keys}
    found: dict[Key, Analysis] = {}
    hashes = sorted({digest for _, digest in wanted})
    for start in range(0, len(hashes), 500):
        rows = session.execute(
            select(StoredAnalysis.input_type, StoredAnalysis.input_hash, StoredAnalysis.record)
            .where(StoredAnalysis.pipeline == pipeline)
            .where(StoredAnalysis.input_hash.in_(hashes[start : start + 500]))
        )
        for kind, digest, record in rows:
            key = wanted.get((kind, digest))
            if key is None:
                continue
            analysis = from_record(record, references)
            if analysis is not None and analysis.input == key[1]:
                found[key] = analysis
    return found


def save(session: Session, pipeline: str, analyses: Mapping[Key, Analysis]) -> None:
    """Store analyses in the caller's transaction; one stored meanwhile by another process is
    kept (INSERT ... ON CONFLICT DO NOTHING, on SQLite and PostgreSQL alike)."""
    if not analyses:
        return
    rows = [
        {
            "pipeline": pipeline,
            "input_type": kind,
            "input_hash": input_hash(text),
            "record": to_record(analysis),
            "created_at": utc_now(),
        }
        for (kind, text), analysis in sorted(analyses.items())
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(StoredAnalysis).on_conflict_do_nothing(
        index_elements=["pipeline", "input_type", "input_hash"]
    )
    session.execute(statement, rows)


def purge_expired(session: Session) -> int:
    """Delete rows past RETENTION; returns how many."""
    result = session.execute(
        delete(StoredAnalysis).where(StoredAnalysis.created_at < utc_now() - RETENTION)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
