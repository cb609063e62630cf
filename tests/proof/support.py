"""A small populated network for the proof tests: detections of two labs, a published alert with
its scores and deliveries, and subscribers with email and webhook channels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.levels import AlertLevel
from app.db import utc_now
from app.models import Alert, ApiKey, EmailChannel, Subscriber, Substance, ThreatScore
from app.models.enums import AlertStatus, SubjectType, SubscriberKind
from app.security import split_api_key
from app.settings import Settings
from tests.conftest import auth

# A reference standard of the library (loaded_references) and an unlisted analogue of it.
REFERENCE_SMILES = "CC(N)Cc1ccccc1"  # amphetamine
UNLISTED_SMILES = "CCCCCCC(C)(C)c1cc(O)c2c(c1)OC(C)(C)C1CCC(CO)CC21"
ROLES = ("lab", "officer", "subscriber", "admin")
KEY_OF_ROLE = {"lab": "lab_a", "officer": "officer", "subscriber": "subscriber", "admin": "admin"}


@dataclass(frozen=True, slots=True)
class World:
    detection_a: int  # lab A's
    detection_b: int  # lab B's
    alert_id: int  # published, so sent to the subscriber key's organisation
    inchikey: str  # the alert's substance, which has scores
    subscriber_id: int
    endpoint_id: int
    endpoint_secret: str
    delivery_id: int


def loopback_webhooks(settings: Settings) -> Settings:
    """Settings that admit webhook receivers on loopback (seed() creates one; nothing is
    delivered, since no scheduler runs in these tests)."""
    return settings.model_copy(update={"webhook_allowed_networks": "127.0.0.0/8"})


def post_detection(client: TestClient, key: str, smiles: str, **fields: Any) -> dict[str, Any]:
    body = {
        "substance": {"smiles": smiles},
        "detected_on": (date.today() - timedelta(days=3)).isoformat(),
        "country": "DE",
        "sample_type": "seizure",
        **fields,
    }
    response = client.post("/v1/detections", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def organisation_of(session: Session, key: str) -> int:
    prefix = split_api_key(key)
    organisation_id = session.scalar(select(ApiKey.organisation_id).where(ApiKey.prefix == prefix))
    assert organisation_id is not None
    return organisation_id


def seed(client: TestClient, sessions: sessionmaker[Session], keys: dict[str, str]) -> World:
    """Populate the network through the API where there is one (needs loaded_references)."""
    detection_a = post_detection(client, keys["lab_a"], REFERENCE_SMILES)["id"]
    detection_b = post_detection(client, keys["lab_b"], UNLISTED_SMILES, country="FR")["id"]
    created = client.post(
        "/v1/subscribers",
        json={
            "name": "Poison centre",
            "kind": "health",
            "filters": {"min_level": "info"},
            "channels": [
                {"type": "email", "address": "alerts@poison-centre.example"},
                {"type": "webhook", "url": "http://127.0.0.1:9/hooks/sentinel"},
            ],
        },
        headers=auth(keys["admin"]),
    )
    assert created.status_code == 201, created.text
    webhook = next(c for c in created.json()["channels"] if c["type"] == "webhook")
    with sessions.begin() as session:
        # The subscriber key's own organisation subscribes, so that it is sent the alert.
        subscriber = Subscriber(
            name="Ministry of Health",
            kind=SubscriberKind.MINISTRY,
            organisation_id=organisation_of(session, keys["subscriber"]),
            min_level=AlertLevel.INFO,
        )
        session.add(subscriber)
        session.flush()
        session.add(EmailChannel(subscriber_id=subscriber.id, address="duty@health.example"))
        substance = session.scalar(select(Substance).where(Substance.smiles == REFERENCE_SMILES))
        if substance is None:
            substance = session.scalars(select(Substance).order_by(Substance.id)).first()
        assert substance is not None, "the reference library is not loaded"
        now = utc_now()
        components = [{"name": "harm", "value": 0.5, "weight": 30.0, "reason": "1 death"}]
        alert = Alert(
            dedup_key=f"substance:{substance.inchikey}",
            subject_key=f"substance:{substance.inchikey}",
            subject_type=SubjectType.SUBSTANCE,
            substance_id=substance.id,
            level=AlertLevel.WARNING,
            status=AlertStatus.NEW,
            score=64.0,
            title=f"Warning: {substance.name}",
            summary=f"{substance.name} scored 64/100.",
            components=components,
            countries=["DE"],
            created_at=now,
            updated_at=now,
        )
        session.add(alert)
        session.add(
            ThreatScore(
                subject_type=SubjectType.SUBSTANCE,
                subject_key=f"substance:{substance.inchikey}",
                substance_id=substance.id,
                as_of=date.today(),
                window_days=28,
                score=64.0,
                components=components,
            )
        )
        session.flush()
        alert_id, inchikey = alert.id, substance.inchikey
    published = client.post(
        f"/v1/alerts/{alert_id}/publish", json={"note": "seen"}, headers=auth(keys["officer"])
    )
    assert published.status_code == 200, published.text
    deliveries = client.get("/v1/deliveries", headers=auth(keys["admin"])).json()
    assert deliveries, "publishing enqueued no delivery"
    return World(
        detection_a=detection_a,
        detection_b=detection_b,
        alert_id=alert_id,
        inchikey=inchikey,
        subscriber_id=created.json()["id"],
        endpoint_id=webhook["id"],
        endpoint_secret=webhook["secret"],
        delivery_id=deliveries[0]["id"],
    )
