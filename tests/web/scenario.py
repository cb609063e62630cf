"""A realistic early-warning picture built through the real services: labs post detections over
weeks through the API, subscribers exist, and the scoring job runs day by day."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import utc_now
from app.jobs import JobContext, score_threats
from app.models import Alert, User
from app.models.enums import AlertStatus, ApiRole, OrganisationKind, UserRole
from app.settings import Settings
from tests.conftest import auth, make_key, make_organisation

OFFICER_EMAIL = "a.okafor@ews.example.org"
ADMIN_EMAIL = "admin@ews.example.org"
PASSWORD = "correct horse battery staple"

# Nitazene analogues that match no reference standard: they open one unidentified cluster.
NITAZENE_CLUSTER = {
    "N-pyrrolidino butonitazene": "C4CCCN4CCn1c(Cc2ccc(OCCCC)cc2)nc3cc([N+](=O)[O-])ccc31",
    "N-piperidinyl butonitazene": "C4CCCCN4CCn1c(Cc2ccc(OCCCC)cc2)nc3cc([N+](=O)[O-])ccc31",
    "N-piperidinyl protonitazene": "C4CCCCN4CCn1c(Cc2ccc(OCCC)cc2)nc3cc([N+](=O)[O-])ccc31",
    "N-pyrrolidino pentyloxynitazene": "C4CCCN4CCn1c(Cc2ccc(OCCCCC)cc2)nc3cc([N+](=O)[O-])ccc31",
}
PROTONITAZENE = "CCN(CC)CCn1c(Cc2ccc(OCCC)cc2)nc3cc([N+](=O)[O-])ccc31"
BROMAZOLAM = "Cc1nnc2CN=C(c3ccccc3)c3cc(Br)ccc3-n12"
XYLAZINE = "Cc1cccc(C)c1NC1=NCCCS1"
ALPHA_PIHP = "CC(C)CC(N1CCCC1)C(=O)c1ccccc1"
MDMB_4EN_PINACA = "COC(=O)[C@@H](NC(=O)c1nn(CCCC=C)c2ccccc12)C(C)(C)C"
HHC = "CCCCCc1cc(O)c2[C@@H]3CC(C)CC[C@H]3C(C)(C)Oc2c1"
CMC_3 = "CNC(C)C(=O)c1cccc(Cl)c1"

LABS = {  # country -> lab name
    "DE": "Lab A",
    "FR": "Lab B",
    "NL": "Netherlands Forensic Institute",
    "BE": "NICC Brussels",
    "AT": "AGES Vienna",
    "PL": "Central Forensic Laboratory Warsaw",
    "SE": "NFC Linkoping",
    "ES": "INTCF Madrid",
}


@dataclass(frozen=True, slots=True)
class Stream:
    """Detections of one structure: weekly counts (oldest first, ending this week)."""

    smiles: str
    weekly: tuple[int, ...]
    countries: tuple[str, ...]
    contexts: tuple[tuple[str | None, float], ...]  # context, weight
    sample_types: tuple[str, ...] = ("seizure",)


def streams(full: bool) -> list[Stream]:
    nitazene = [
        Stream(
            smiles,
            weekly,
            ("DE", "NL", "BE", "AT", "FR"),
            (("death", 0.25), ("intoxication", 0.35), ("seizure", 0.3), (None, 0.1)),
            ("biological", "seizure", "drug_checking"),
        )
        for smiles, weekly in zip(
            NITAZENE_CLUSTER.values(),
            [(1, 2, 4, 6, 8), (0, 1, 2, 3, 4), (0, 0, 1, 2, 2), (0, 0, 0, 1, 2)],
            strict=True,
        )
    ]
    core = [
        *nitazene,
        Stream(
            PROTONITAZENE,
            (0, 1, 0, 1, 1, 0, 2, 1, 3),
            ("DE", "PL", "SE"),
            (("death", 0.3), ("intoxication", 0.3), ("seizure", 0.4)),
            ("biological", "seizure"),
        ),
        Stream(
            XYLAZINE,
            (1, 3, 5),
            ("ES", "FR", "DE"),
            (("intoxication", 0.5), ("death", 0.1), (None, 0.4)),
            ("drug_checking", "biological"),
        ),
    ]
    if not full:
        return core
    return [
        *core,
        Stream(
            BROMAZOLAM,
            (3, 4, 2, 5, 3, 4, 6, 3, 4, 5, 4, 3, 5, 6, 4, 5) * 4,
            ("DE", "FR", "NL", "BE", "AT", "SE", "PL"),
            (("intoxication", 0.3), ("driving", 0.25), ("seizure", 0.35), (None, 0.1)),
            ("seizure", "biological", "test_purchase"),
        ),
        Stream(
            ALPHA_PIHP,
            (0, 0, 1, 0, 1, 2, 2, 4, 5, 7),
            ("PL", "DE", "SE"),
            (("seizure", 0.7), ("intoxication", 0.2), (None, 0.1)),
            ("seizure", "test_purchase"),
        ),
        Stream(
            MDMB_4EN_PINACA,
            (2, 3, 1, 2, 4, 2, 3, 2, 1, 3) * 7,
            ("DE", "FR", "BE", "NL", "ES"),
            (("seizure", 0.8), ("intoxication", 0.2)),
            ("seizure",),
        ),
        Stream(
            HHC,
            (0, 1, 0, 2, 1, 3, 2, 4, 3, 5, 4, 6),
            ("DE", "AT", "FR", "NL"),
            (("seizure", 0.5), (None, 0.5)),
            ("test_purchase", "drug_checking"),
        ),
        Stream(
            CMC_3,
            (2, 1, 2, 2, 1, 3, 1, 2, 2, 1, 2, 2, 3, 2) * 5,
            ("NL", "BE", "PL"),
            (("seizure", 0.9), ("intoxication", 0.1)),
            ("seizure",),
        ),
    ]


def detections(today: date, full: bool, seed: int = 7) -> Iterator[tuple[str, dict[str, Any]]]:
    """(country, record) pairs; each week's detections fall on its days up to today."""
    rng = random.Random(seed)
    this_monday = today - timedelta(days=today.weekday())
    counter = 0
    for stream in streams(full):
        weeks = len(stream.weekly)
        for index, count in enumerate(stream.weekly):
            monday = this_monday - timedelta(weeks=weeks - 1 - index)
            last_day = min(6, (today - monday).days)
            for _ in range(count):
                counter += 1
                # New substances spread outward: early weeks stay in the first countries.
                reach = max(1, round(len(stream.countries) * (index + 1) / weeks))
                country = rng.choice(stream.countries[:reach])
                contexts = [c for c, _ in stream.contexts]
                weights = [w for _, w in stream.contexts]
                context = rng.choices(contexts, weights)[0]
                record: dict[str, Any] = {
                    "substance": {"smiles": stream.smiles},
                    "detected_on": (monday + timedelta(days=rng.randint(0, last_day))).isoformat(),
                    "country": country,
                    "sample_type": rng.choice(stream.sample_types),
                    "technique": rng.choice(["GC-MS", "LC-HRMS", "LC-MS/MS"]),
                    "lab_reference": f"{country}-{today.year}-{counter:05d}",
                }
                if context is not None:
                    record["context"] = context
                if record["sample_type"] == "seizure":
                    record["purity_percent"] = round(rng.uniform(4, 60), 1)
                yield country, record


@dataclass(frozen=True, slots=True)
class Scenario:
    today: date
    alert_ids: dict[str, int]  # subject key -> alert id

    def first_alert(self, sessions: sessionmaker[Session], status: AlertStatus) -> Alert:
        with sessions.begin() as session:
            alert = session.scalar(
                select(Alert).where(Alert.status == status).order_by(Alert.score.desc())
            )
            assert alert is not None, f"the scenario opened no {status.value} alert"
            return alert


# argon2id at its lowest cost: the console verifies any argon2 hash by the parameters it carries,
# and the default cost (about 0.1-0.8 s a hash) would dominate these tests' time.
_CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def create_users(sessions: sessionmaker[Session]) -> None:
    password_hash = _CHEAP.hash(PASSWORD)
    with sessions.begin() as session:
        agency = make_organisation(session, "National Early Warning Unit", OrganisationKind.AGENCY)
        for email, role in ((OFFICER_EMAIL, UserRole.OFFICER), (ADMIN_EMAIL, UserRole.ADMIN)):
            session.add(
                User(
                    email=email,
                    password_hash=password_hash,
                    role=role,
                    organisation_id=agency.id,
                )
            )


def build(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    full: bool = True,
    score_days: int = 42,
) -> Scenario:
    """Post the detections through the API, create subscribers and score day by day."""
    today = utc_now().date()
    lab_keys = {"DE": keys["lab_a"], "FR": keys["lab_b"]}
    with sessions.begin() as session:
        for country, name in LABS.items():
            if country not in lab_keys:
                lab = make_organisation(session, name, country=country)
                lab_keys[country] = make_key(session, ApiRole.LAB, lab)
    by_lab: dict[str, list[dict[str, Any]]] = {}
    for country, record in detections(today, full):
        by_lab.setdefault(country, []).append(record)
    for country, records in by_lab.items():
        for start in range(0, len(records), 500):
            response = client.post(
                "/v1/detections/batch",
                json={"detections": records[start : start + 500]},
                headers=auth(lab_keys[country]),
            )
            assert response.status_code == 200, response.text
            assert response.json()["rejected"] == 0, response.text
    for name, kind, address in (
        ("Federal Ministry of Health", "ministry", "ews@health.example.gov"),
        ("National Poisons Information Centre", "health", "duty@poisons.example.org"),
    ):
        response = client.post(
            "/v1/subscribers",
            json={
                "name": name,
                "kind": kind,
                "filters": {"min_level": "advisory"},
                "channels": [{"type": "email", "address": address}],
            },
            headers=auth(keys["admin"]),
        )
        assert response.status_code == 201, response.text
    context = JobContext(sessions, settings)
    for offset in range(score_days - 1, -1, -1):
        score_threats(context, today - timedelta(days=offset))
    with sessions.begin() as session:
        alert_ids = {a.subject_key: a.id for a in session.scalars(select(Alert))}
    return Scenario(today=today, alert_ids=alert_ids)
