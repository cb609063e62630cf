"""Batch intake's fast path (one multi-row insert) and what keeps it right: lab_references
checked before the insert, a lost race redone record by record, and cluster bookkeeping that
survives rolled-back savepoints and sessions used for several transactions."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.catalogue import Catalogue
from app.chemistry_pool import InlineChemistry
from app.deps import Principal
from app.detections import service
from app.detections.schemas import DetectionCreate
from app.enrichment import Enricher
from app.models import Cluster, Detection, Organisation
from app.models.enums import ApiRole
from reference_standards import Library
from tests.conftest import auth

NEW_NITAZENE = "CCN(CC)CCn1c(Cc2ccc(OCC3CC3)cc2)nc2cc([N+](=O)[O-])ccc21"
NEW_NITAZENE_HOMOLOGUE = "CCN(CC)CCn1c(Cc2ccc(OCC3CCC3)cc2)nc2cc([N+](=O)[O-])ccc21"
MDMB_PINACA = "CCCCCn1nc(C(=O)NC(C(=O)OC)C(C)(C)C)c2ccccc21"
AMPHETAMINE = "CC(N)Cc1ccccc1"


def record(smiles: str = AMPHETAMINE, **overrides: Any) -> dict[str, Any]:
    return {
        "substance": {"smiles": smiles},
        "detected_on": "2026-03-02",
        "country": "DE",
        "sample_type": "seizure",
    } | overrides


def post_batch(client: TestClient, key: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/v1/detections/batch", json={"detections": records}, headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_every_cluster_has_members(sessions: sessionmaker[Session]) -> None:
    """No cluster without a detection: a cluster opened by a rolled-back record is gone."""
    with sessions.begin() as session:
        members = set(
            session.scalars(select(Detection.cluster_id).where(Detection.cluster_id.is_not(None)))
        )
        clusters = set(session.scalars(select(Cluster.id)))
    assert clusters
    assert members == clusters


def test_lab_references_stored_before_or_repeated_in_the_batch_are_rejected(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    loaded_references: Library,
) -> None:
    first = client.post(
        "/v1/detections", json=record(lab_reference="S-1"), headers=auth(keys["lab_a"])
    )
    assert first.status_code == 201
    stored_id = first.json()["id"]

    body = post_batch(
        client,
        keys["lab_a"],
        [
            record(lab_reference="S-1"),
            record(NEW_NITAZENE, lab_reference="S-2"),
            record(NEW_NITAZENE_HOMOLOGUE, lab_reference="S-2"),
            record(MDMB_PINACA, lab_reference="S-3"),
        ],
    )

    assert [r["status"] for r in body["results"]] == [
        "rejected",
        "accepted",
        "rejected",
        "accepted",
    ]
    assert body["results"][0]["errors"] == [
        {
            "field": "lab_reference",
            "reason": f"lab_reference 'S-1' is already used by detection {stored_id}",
        }
    ]
    assert body["results"][2]["errors"] == [
        {"field": "lab_reference", "reason": "lab_reference 'S-2' is already used by record 1"}
    ]
    # Lab B's references are its own: the same value is no clash.
    other = post_batch(client, keys["lab_b"], [record(lab_reference="S-1")])
    assert other["accepted"] == 1
    assert_every_cluster_has_members(sessions)


def test_a_batch_that_loses_a_lab_reference_race_stores_its_other_records(
    client: TestClient,
    app: Any,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    database_url: str,
    loaded_references: Library,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip(
            "SQLite takes its write lock at BEGIN: no other writer can store a lab_reference "
            "between the batch's check and its insert"
        )
    enricher: Enricher = app.state.enricher
    original_build = service.build
    with sessions.begin() as session:
        organisation_id = session.scalar(
            select(Organisation.id).where(Organisation.name == "Lab A")
        )
    assert organisation_id is not None
    raced: list[int] = []

    def racing_build(*args: Any, **kwargs: Any) -> Detection:
        if not raced:
            # Another request stores RACE-1 and commits, after the batch checked its references
            # and before its insert.
            with sessions.begin() as other:
                principal = Principal(
                    actor="racer",
                    actor_type="api_key",
                    role=ApiRole.LAB,
                    organisation_id=organisation_id,
                )
                body = DetectionCreate.model_validate(record(lab_reference="RACE-1"))
                detection = original_build(other, principal, body, enricher)
                other.add(detection)
                other.flush()
                raced.append(detection.id)
        return original_build(*args, **kwargs)

    monkeypatch.setattr(service, "build", racing_build)
    body = post_batch(
        client,
        keys["lab_a"],
        [
            record(NEW_NITAZENE, lab_reference="OK-1"),
            record(lab_reference="RACE-1"),
            record(NEW_NITAZENE_HOMOLOGUE),
            record(MDMB_PINACA, lab_reference="OK-2"),
        ],
    )

    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "rejected",
        "accepted",
        "accepted",
    ]
    assert body["results"][1]["errors"][0]["field"] == "lab_reference"
    accepted = [r["detection"] for r in body["results"] if r["detection"]]
    assert accepted[0]["cluster_id"] == accepted[1]["cluster_id"] is not None
    with sessions.begin() as session:
        references = sorted(filter(None, session.scalars(select(Detection.lab_reference))))
        cluster_ids = set(session.scalars(select(Cluster.id)))
    assert len(raced) == 1
    assert references == ["OK-1", "OK-2", "RACE-1"]
    assert {d["cluster_id"] for d in accepted} <= cluster_ids
    assert_every_cluster_has_members(sessions)


def test_a_rolled_back_savepoint_forgets_the_clusters_it_opened(
    sessions: sessionmaker[Session], loaded_references: Library
) -> None:
    catalogue = Catalogue()
    enricher = Enricher(catalogue, chemistry=InlineChemistry())
    with sessions.begin() as session:
        analysis = enricher.enrich(session, "smiles", NEW_NITAZENE).analysis
        assert analysis is not None
        analyser = catalogue.analyser(session)
        opened: list[bool] = []

        def fail_after_opening() -> None:
            with catalogue.savepoint(session):
                opened.append(catalogue.cluster_for(session, analysis, analyser)[1])
                raise RuntimeError("the record failed after its cluster was opened")

        with pytest.raises(RuntimeError):
            fail_after_opening()
        assert opened == [True]
        kept, created = catalogue.cluster_for(session, analysis, analyser)
        assert created  # not the rolled-back cluster
        again, created = catalogue.cluster_for(session, analysis, analyser)
        assert (again.id, created) == (kept.id, False)
    with sessions.begin() as session:
        assert list(session.scalars(select(Cluster.id))) == [kept.id]


def test_clusters_a_reused_session_opened_reach_the_shared_index(
    sessions: sessionmaker[Session], loaded_references: Library
) -> None:
    """A session used for two transactions (as the importer's may be) must not hide the
    cluster it opened in the first from later transactions of other sessions."""
    catalogue = Catalogue()
    enricher = Enricher(catalogue, chemistry=InlineChemistry())
    elsewhere = Catalogue()  # another API process
    with sessions.begin() as session:
        nitazene = enricher.enrich(session, "smiles", NEW_NITAZENE).analysis
        scra = enricher.enrich(session, "smiles", MDMB_PINACA).analysis
        assert nitazene is not None
        assert scra is not None
        analyser = catalogue.analyser(session)
    reused = sessions()
    with reused.begin():
        first, created = catalogue.cluster_for(reused, nitazene, analyser)
        assert created
    with sessions.begin() as session:  # the other process opens a cluster of its own
        second, created = elsewhere.cluster_for(session, scra, elsewhere.analyser(session))
        assert created
        assert second.id > first.id
    with reused.begin():  # a later transaction of the reused session refreshes the index
        _, created = catalogue.cluster_for(reused, scra, analyser)
        assert not created
    reused.close()
    with sessions.begin() as session:
        joined, created = catalogue.cluster_for(session, nitazene, analyser)
        assert (joined.id, created) == (first.id, False)
        assert session.scalar(select(func.count()).select_from(Cluster)) == 2
