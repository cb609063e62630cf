"""`alembic upgrade head` gives exactly the schema the models describe, on every backend."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from app.db import Base, make_engine
from app.migrate import alembic_config, database_heads, script_heads, upgrade


def test_upgrade_reaches_head(engine: Engine) -> None:
    with engine.connect() as connection:
        assert database_heads(connection) == script_heads()
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_models_and_migrations_do_not_drift(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_sqlite_is_configured_for_durability(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 2,
        "busy_timeout": 30000,
    }


def test_downgrading_0002_recounts_cluster_members(fresh_database_url: str) -> None:
    """0002 dropped the stored member counts; going back to 0001 counts them again from the
    clusters' active detections, so a downgraded database holds what 0001 code expects."""
    engine = make_engine(fresh_database_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO organisation (id, name, kind, country, created_at) "
                    "VALUES (1, 'Lab', 'lab', 'DE', '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO cluster (id, representative_smiles, representative_inchikey, "
                    "fingerprint, fingerprint_spec, potency_tier, potent_similarity, "
                    "controlled_analogue, nearest, created_at) VALUES "
                    "(7, 'C', 'VNWKTOKETHGBQD-UHFFFAOYSA-N', :fp, 'spec', 'unknown', 0, "
                    "false, '[]', '2026-01-01 00:00:00')"
                ),
                {"fp": b"\x00"},
            )
            for day, status in (
                ("2026-02-03", "active"),
                ("2026-03-04", "active"),
                ("2026-05-06", "withdrawn"),
            ):
                connection.execute(
                    text(
                        "INSERT INTO detection (organisation_id, status, input_type, input_text, "
                        "cluster_id, unidentified_name, detected_on, country, sample_type, "
                        "co_detected, enrichment, created_at, updated_at) VALUES "
                        "(1, :status, 'smiles', 'C', 7, false, :day, 'DE', 'seizure', '[]', "
                        "'{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                    ),
                    {"status": status, "day": day},
                )
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0001")
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT member_count, first_seen_on, last_seen_on FROM cluster")
            ).one()
        assert (row[0], str(row[1]), str(row[2])) == (2, "2026-02-03", "2026-03-04")
        upgrade(engine)
        with engine.connect() as connection:
            assert database_heads(connection) == script_heads()
    finally:
        engine.dispose()
