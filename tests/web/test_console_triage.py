"""The alert queue and the alert page: what officers see, and each triage action (audited)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.levels import AlertLevel
from app.models import Alert, AlertEvent, AuditLog, Delivery, Substance
from app.models.enums import AlertStatus, SubjectType
from app.settings import Settings
from tests.web.conftest import csrf_of
from tests.web.scenario import Scenario, build

ROW = re.compile(r'<tr class="queue-row lvl-(\w+)" data-href="/console/alerts/(\d+)">')


@pytest.fixture
def scenario(
    officer_client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    loaded_references: Any,
) -> Scenario:
    """Nitazenes (an unidentified cluster and protonitazene) and xylazine, scored for 10 days."""
    return build(officer_client, keys, sessions, settings, full=False, score_days=10)


def alert_in(sessions: sessionmaker[Session], alert_id: int) -> Alert:
    with sessions.begin() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert


def new_alert_id(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        alert_id = session.scalar(
            select(Alert.id).where(Alert.status == AlertStatus.NEW).order_by(Alert.score.desc())
        )
        assert alert_id is not None, "the scenario opened no new alert"
        return alert_id


def test_the_queue_lists_open_alerts_by_level_then_score_with_counts(
    officer_client: TestClient, scenario: Scenario, sessions: sessionmaker[Session]
) -> None:
    page = officer_client.get("/console/alerts")

    assert page.status_code == 200
    rows = [(level, int(alert_id)) for level, alert_id in ROW.findall(page.text)]
    with sessions.begin() as session:
        alerts = {a.id: a for a in session.scalars(select(Alert))}
    assert {alert_id for _, alert_id in rows} == set(alerts)
    ranked = [(alerts[i].level.rank, alerts[i].score) for _, i in rows]
    assert ranked == sorted(ranked, reverse=True)
    assert "unidentified nitazene cluster" in page.text
    assert "/console/structures/" in page.text  # thumbnails
    critical = sum(1 for a in alerts.values() if a.level is AlertLevel.CRITICAL)
    tile = rf'<span class="count">{critical}</span>\s*<span class="what">critical'
    assert re.search(tile, page.text)


def test_the_queue_filters_by_level_status_group_country_and_subject(
    officer_client: TestClient, scenario: Scenario, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        alerts = list(session.scalars(select(Alert)))
        groups = {
            a.id: s.chemical_group.value
            for a in alerts
            if a.substance_id and (s := session.get(Substance, a.substance_id))
        }

    def shown(query: str) -> set[int]:
        return {int(i) for _, i in ROW.findall(officer_client.get(f"/console/alerts?{query}").text)}

    assert shown("level=critical") == {a.id for a in alerts if a.level is AlertLevel.CRITICAL}
    assert shown("status=published") == {a.id for a in alerts if a.status is AlertStatus.PUBLISHED}
    assert shown("subject_type=cluster") == {
        a.id for a in alerts if a.subject_type is SubjectType.CLUSTER
    }
    assert shown("group=nitazene") >= {a.id for a in alerts if groups.get(a.id) == "nitazene"}
    assert shown("group=nitazene")
    assert shown("country=ES") == {a.id for a in alerts if "ES" in a.countries}
    assert shown("level=bogus&group=nope") == {a.id for a in alerts}  # unknown values: no filter


def test_the_alert_page_shows_structure_score_charts_members_and_history(
    officer_client: TestClient, scenario: Scenario, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        cluster_alert = session.scalar(
            select(Alert).where(Alert.subject_type == SubjectType.CLUSTER)
        )
        assert cluster_alert is not None

    page = officer_client.get(f"/console/alerts/{cluster_alert.id}")

    assert page.status_code == 200
    text = page.text
    assert 'class="structure structure-large"' in text
    assert "Nearest reference standards" in text
    assert "N-Pyrrolidino protonitazene</a>" in text  # the nearest reference standard
    for component in ("Harm", "Novelty", "Growth", "Potency analogy"):
        assert f">{component}</th>" in text
    assert text.count('<svg class="chart"') == 2  # by country, by context
    assert 'class="threshold"' in text
    assert "Cluster members" in text
    assert "published at once by level policy" in text  # history
    assert "Publish to subscribers" not in text  # already published


@pytest.mark.parametrize(
    ("action", "note", "status"),
    [
        ("acknowledge", "", AlertStatus.ACKNOWLEDGED),
        ("escalate", "two labs, one death", AlertStatus.ESCALATED),
        ("dismiss", "duplicate report of one seizure", AlertStatus.DISMISSED),
        ("publish", "advise emergency departments", AlertStatus.PUBLISHED),
        ("resolve", "no detections for a month", AlertStatus.RESOLVED),
    ],
)
def test_each_action_changes_the_alert_is_audited_and_shows_in_the_queue(
    officer_client: TestClient,
    scenario: Scenario,
    sessions: sessionmaker[Session],
    users: dict[str, str],
    action: str,
    note: str,
    status: AlertStatus,
) -> None:
    alert_id = new_alert_id(sessions)

    response = officer_client.post(
        f"/console/alerts/{alert_id}/{action}",
        data={"csrf_token": csrf_of(officer_client), "note": note},
        follow_redirects=False,
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/console/alerts/{alert_id}?done={action}"
    assert alert_in(sessions, alert_id).status is status
    with sessions.begin() as session:
        event = session.scalar(
            select(AlertEvent).where(AlertEvent.alert_id == alert_id, AlertEvent.action == action)
        )
        assert event is not None
        assert (event.actor, event.note) == (users["officer"], note)
        audit = session.scalar(select(AuditLog).where(AuditLog.action == f"alert.{action}"))
        assert audit is not None
        assert (audit.actor, audit.actor_type, audit.role) == (users["officer"], "user", "officer")
        assert audit.object_id == str(alert_id)
        assert audit.detail["note"] == note
        deliveries = session.scalars(select(Delivery).where(Delivery.alert_id == alert_id)).all()
    detail = officer_client.get(response.headers["location"])
    assert 'role="status"' in detail.text
    everything = officer_client.get("/console/alerts?status=all").text
    assert re.search(
        rf'data-href="/console/alerts/{alert_id}">.*?status-{status.value}"', everything, re.S
    )
    if action == "publish":
        assert deliveries, "publishing queues deliveries for the matching subscribers"
        assert "pending" in detail.text
        assert f"{len(deliveries)} deliveries in the outbox" in detail.text
    if status in (AlertStatus.DISMISSED, AlertStatus.RESOLVED):
        open_queue = officer_client.get("/console/alerts").text
        assert f'data-href="/console/alerts/{alert_id}"' not in open_queue


def test_dismissing_needs_a_reason_and_a_conflict_is_explained(
    officer_client: TestClient, scenario: Scenario, sessions: sessionmaker[Session]
) -> None:
    alert_id = new_alert_id(sessions)
    token = csrf_of(officer_client)

    no_reason = officer_client.post(
        f"/console/alerts/{alert_id}/dismiss", data={"csrf_token": token, "note": "  "}
    )
    assert no_reason.status_code == 422
    assert "a dismissal needs a reason" in no_reason.text
    assert alert_in(sessions, alert_id).status is AlertStatus.NEW

    officer_client.post(f"/console/alerts/{alert_id}/publish", data={"csrf_token": token})
    conflict = officer_client.post(
        f"/console/alerts/{alert_id}/escalate", data={"csrf_token": token}
    )
    assert conflict.status_code == 409
    assert "was not done" in conflict.text
    with sessions.begin() as session:
        assert session.scalar(select(AuditLog).where(AuditLog.action == "alert.escalate")) is None


def test_an_unknown_alert_is_a_404_page(officer_client: TestClient) -> None:
    response = officer_client.get("/console/alerts/999999")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]


def test_substance_cluster_and_search_pages(
    officer_client: TestClient, scenario: Scenario, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        cluster_id = session.scalar(select(Alert.cluster_id).where(Alert.cluster_id.is_not(None)))
        inchikey = session.scalar(
            select(Substance.inchikey).where(Substance.name == "Protonitazene")
        )
    substance = officer_client.get(f"/console/substances/{inchikey}")
    assert substance.status_code == 200
    for text in ("Protonitazene", "Potency tier", "International control", "Detections per week"):
        assert text in substance.text
    cluster = officer_client.get(f"/console/clusters/{cluster_id}")
    assert cluster.status_code == 200
    assert "Members" in cluster.text
    assert 'class="threshold"' in cluster.text

    by_name = officer_client.get("/console/search", params={"mode": "name", "q": "nitazene"})
    assert "Protonitazene" in by_name.text
    similar = officer_client.get(
        "/console/search",
        params={
            "mode": "similarity",
            "q": "C4CCCN4CCn1c(Cc2ccc(OCCCC)cc2)nc3cc([N+](=O)[O-])ccc31",
            "threshold": "0.6",
        },
    )
    assert "unidentified nitazene cluster" in similar.text
    assert "Butonitazene" in similar.text
    indoles = officer_client.get(
        "/console/search", params={"mode": "substructure", "q": "c1ccc2[nH]ccc2c1"}
    )
    assert "highlight=" in indoles.text
    bad = officer_client.get("/console/search", params={"mode": "substructure", "q": "[[["})
    assert "Not a valid SMARTS" in bad.text


def test_structure_drawings_are_svg_images_with_their_own_policy(
    officer_client: TestClient, scenario: Scenario, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        inchikey = session.scalar(
            select(Substance.inchikey).where(Substance.name == "Protonitazene")
        )
    response = officer_client.get(f"/console/structures/{inchikey}.svg?size=thumb")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.lstrip().startswith("<svg")
    assert "<script" not in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert "max-age" in response.headers["cache-control"]
    assert officer_client.get("/console/structures/NOT-A-KEY.svg").status_code == 404
    missing = officer_client.get("/console/structures/AAAAAAAAAAAAAA-AAAAAAAAAA-A.svg")
    assert missing.status_code == 404


def test_the_queue_of_hundreds_of_alerts_takes_a_fixed_number_of_queries(
    officer_client: TestClient,
    sessions: sessionmaker[Session],
    engine: Engine,
    loaded_references: Any,
) -> None:
    with sessions.begin() as session:
        substances = list(session.scalars(select(Substance).limit(300)))
        for index, substance in enumerate(substances):
            level = list(AlertLevel)[index % 4]
            session.add(
                Alert(
                    dedup_key=f"substance:{substance.inchikey}#1",
                    subject_key=f"substance:{substance.inchikey}",
                    subject_type=SubjectType.SUBSTANCE,
                    substance_id=substance.id,
                    level=level,
                    score=float(index % 90),
                    title=f"{level.value}: {substance.name}",
                    countries=["DE", "FR"],
                )
            )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        page = officer_client.get("/console/alerts")
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert page.status_code == 200
    assert len(ROW.findall(page.text)) == 300
    assert len(statements) <= 12, statements
