"""Shared fixtures: a migrated database per backend (SQLite always, PostgreSQL when reachable)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.db import Base, make_engine, make_sessionmaker
from app.main import create_app
from app.migrate import upgrade
from app.models import ApiKey, Organisation, Substance, SubstanceName
from app.models.enums import ApiRole, OrganisationKind
from app.security import generate_api_key
from app.settings import Settings
from reference_standards import Library, load_library

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Give each run a temporary folder of its own (unless --basetemp is given): pytest's
    clean-up of old numbered folders under the shared root can delete the folder, and so the
    SQLite files, of another run still in progress on the same machine."""
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix="sentinel-tests-")
        config.add_cleanup(lambda: shutil.rmtree(config.option.basetemp, ignore_errors=True))


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"

_postgres_reason: str | None = None


def postgres_server_url() -> str | None:
    """The PostgreSQL URL to test against, or None (with the reason kept) when unreachable."""
    global _postgres_reason
    url = os.environ.get("SENTINEL_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        with psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3
        ):
            pass
    except psycopg.Error as error:
        _postgres_reason = f"PostgreSQL unreachable at {url}: {str(error).strip()[:200]}"
        return None
    return url


def _fresh_postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """Create an empty database for this test run; return its URL and a function to drop it."""
    name = f"sentinel_test_{uuid.uuid4().hex[:10]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = make_url(plain).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]

    return url, drop


BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database URL per backend, for the whole run."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'sentinel.db'}"
        return
    server = postgres_server_url()
    if server is None:
        pytest.skip(_postgres_reason or "PostgreSQL unreachable")
    url, drop = _fresh_postgres_database(server)
    try:
        yield url
    finally:
        drop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the database runs once per backend."""
    if "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", BACKENDS, indirect=True, scope="session")


@pytest.fixture(scope="session")
def reference_library() -> Library:
    """The reference library from the data files, read and validated once per run."""
    return load_library()


@pytest.fixture(scope="session")
def loaded_references(engine: Engine, reference_library: Library) -> Library:
    """The reference library loaded into the shared database of a backend (once per backend)."""
    from app.substances.loader import load_library_into

    with make_sessionmaker(engine).begin() as session:
        load_library_into(session, reference_library)
    return reference_library


@pytest.fixture
def fresh_database_url(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[str]:
    """An empty, unmigrated database of the same backend, for tests that need a clean slate."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    server = postgres_server_url()
    assert server is not None
    url, drop = _fresh_postgres_database(server)
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine (alembic upgrade head), shared by the tests of one backend."""
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


# Reference data is loaded once per backend and kept; everything else is emptied after each test.
_KEPT_TABLES = {Substance.__tablename__, SubstanceName.__tablename__, "alembic_version"}


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "engine" not in request.fixturenames:
        return
    engine: Engine = request.getfixturevalue("engine")
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in _KEPT_TABLES:
                connection.execute(delete(table))


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed when the test body ends without error."""
    with sessions.begin() as session:
        yield session


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, rate_limit_per_minute=100_000, rate_limit_burst=100_000
    )


@pytest.fixture
def app(settings: Settings, engine: Engine) -> Any:
    return create_app(settings, engine=engine)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def make_organisation(
    session: Session,
    name: str | None = None,
    kind: OrganisationKind = OrganisationKind.LAB,
    country: str = "DE",
) -> Organisation:
    organisation = Organisation(
        name=name or f"org-{uuid.uuid4().hex[:8]}", kind=kind, country=country
    )
    session.add(organisation)
    session.flush()
    return organisation


def make_key(session: Session, role: ApiRole, organisation: Organisation | None = None) -> str:
    """Create an API key and return its plaintext."""
    organisation = organisation or make_organisation(session)
    new = generate_api_key()
    session.add(
        ApiKey(prefix=new.prefix, key_hash=new.key_hash, role=role, organisation_id=organisation.id)
    )
    session.flush()
    return new.plaintext


@pytest.fixture
def keys(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Committed keys: two labs (lab_a, lab_b), an officer, a subscriber and an admin."""
    with sessions.begin() as session:
        agency = make_organisation(session, "Agency", OrganisationKind.AGENCY)
        return {
            "lab_a": make_key(session, ApiRole.LAB, make_organisation(session, "Lab A")),
            "lab_b": make_key(
                session, ApiRole.LAB, make_organisation(session, "Lab B", country="FR")
            ),
            "officer": make_key(session, ApiRole.OFFICER, agency),
            "subscriber": make_key(session, ApiRole.SUBSCRIBER, agency),
            "admin": make_key(session, ApiRole.ADMIN, agency),
        }


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ---- per-backend counts in the summary ------------------------------------------------------

_outcomes: Counter[tuple[str, str]] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        backend = next(
            (
                b
                for b in BACKENDS
                if f"[{b}" in report.nodeid
                or f"-{b}]" in report.nodeid
                or f"-{b}-" in report.nodeid
            ),
            "none",
        )
        _outcomes[(backend, report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.section("tests per database backend")
    for backend in [*BACKENDS, "none"]:
        counts = {
            outcome: _outcomes[(backend, outcome)] for outcome in ("passed", "failed", "skipped")
        }
        label = {"none": "no database"}.get(backend, backend)
        terminalreporter.write_line(
            f"{label:12} passed {counts['passed']:4}  failed {counts['failed']:4}  "
            f"skipped {counts['skipped']:4}"
        )
    if _postgres_reason:
        terminalreporter.write_line(f"PostgreSQL tests skipped: {_postgres_reason}")


__all__ = ["SHARED_DATA", "auth", "make_key", "make_organisation", "text"]
