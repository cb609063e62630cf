"""`sentinel demo`: a self-contained demonstration on the embedded SQLite default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app import audit
from app.db import make_engine, make_sessionmaker
from app.migrate import upgrade
from app.models import ApiKey, Organisation
from app.models.enums import ApiRole, OrganisationKind
from app.security import generate_api_key
from app.settings import Settings
from app.substances.loader import LoadCounts, load_library_into
from reference_standards import load_library


@dataclass(frozen=True, slots=True)
class DemoSetup:
    settings: Settings
    lab_key: str
    references: LoadCounts
    reference_problems: int


def _key(session: Session, organisation: Organisation, role: ApiRole, label: str) -> str:
    new = generate_api_key()
    session.add(
        ApiKey(
            prefix=new.prefix,
            key_hash=new.key_hash,
            role=role,
            organisation_id=organisation.id,
            label=label,
        )
    )
    return new.plaintext


def prepare(data_dir: Path) -> DemoSetup:
    """Create a fresh database under data_dir, migrate it and load the reference library."""
    data_dir.mkdir(parents=True, exist_ok=True)
    database = data_dir / "sentinel.db"
    for stale in data_dir.glob("sentinel.db*"):
        stale.unlink()
    settings = Settings(database_url=f"sqlite:///{database.resolve()}")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions: sessionmaker[Session] = make_sessionmaker(engine)
    library = load_library()
    with sessions.begin() as session:
        counts = load_library_into(session, library)
        lab = Organisation(name="Demo Forensic Lab", kind=OrganisationKind.LAB, country="DE")
        session.add(lab)
        session.flush()
        lab_key = _key(session, lab, ApiRole.LAB, "demo lab")
        audit.record(session, None, "demo.prepare", "organisation", lab.id, actor="cli")
    engine.dispose()
    return DemoSetup(
        settings=settings,
        lab_key=lab_key,
        references=counts,
        reference_problems=len(library.problems),
    )
