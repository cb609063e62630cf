"""Scoring through the real path: detections posted by labs, `sentinel score --at`, the alert API.

The story: a nitazene analogue that is in no reference library (a cluster of unidentified
structures, nearest references etonitazene and protonitazene) appears in three countries with
deaths; a known synthetic cannabinoid and an unnamed cathinone are each seized twice; cocaine is
reported every day for a month (routine, no alert). Dates are relative to today so that every
detection is in the past, as the intake requires.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli import cli
from app.models import Alert, AuditLog, ThreatScore
from app.models.enums import ApiRole
from app.scoring.facts import cluster_key, gather, substance_key
from reference_standards import Library
from tests.conftest import auth, make_key, make_organisation

# A nitazene not in the library: 5-nitro, cyclopropylmethoxy-benzyl, N,N-diethylaminoethyl.
NITAZENE = "CCN(CC)CCn1c(Cc2ccc(OCC3CC3)cc2)nc2cc([N+](=O)[O-])ccc21"
# An unnamed cathinone (benzodioxane ring, N-methyl pentanone): also in no library.
NEW_CATHINONE = "CCCC(NC)C(=O)c1ccc2c(c1)OCCO2"
CANNABINOID = "MDMB-4en-PINACA"  # a reference substance, reported by name
MDMB_INCHIKEY = "LWOCBHBFWNGPGM-QGZVFWFLSA-N"
COCAINE_INCHIKEY = "ZPUCINDJVBIVPJ-LJISPDSOSA-N"

AS_OF = date.today() - timedelta(days=60)
CONTRACT = {
    "id",
    "level",
    "status",
    "score",
    "title",
    "created_at",
    "updated_at",
    "subject",
    "components",
}
SUBJECT_KEYS = {"type", "name", "inchikey", "cluster_id"}
COMPONENT_KEYS = {"name", "value", "weight", "reason"}
COMPONENT_NAMES = {"harm", "prevalence", "persistence", "growth", "novelty", "potency_analogy"}
LEVEL_RANK = {"info": 0, "advisory": 1, "warning": 2, "critical": 3}


def day(offset: int) -> str:
    return (AS_OF + timedelta(days=offset)).isoformat()


def detection(substance: dict[str, str], on: str, country: str, **extra: Any) -> dict[str, Any]:
    return {
        "substance": substance,
        "detected_on": on,
        "country": country,
        "sample_type": "seizure",
        **extra,
    }


def post(client: TestClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/detections", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def score(at: str) -> str:
    """`sentinel score --at` in-process (SENTINEL_DATABASE_URL is set by the `seeded` fixture)."""
    result = CliRunner().invoke(cli, ["score", "--at", at])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def officer_get(client: TestClient, keys: dict[str, str], path: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers=auth(keys["officer"]))
    assert response.status_code == 200, response.text
    return response.json()


class Seeded:
    def __init__(self, labs: dict[str, str], nitazene: list[dict[str, Any]]) -> None:
        self.labs = labs  # country -> lab key
        self.nitazene = nitazene  # the three nitazene detections as created
        self.cluster_id: int = nitazene[0]["cluster_id"]


@pytest.fixture
def seeded(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    loaded_references: Library,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Seeded:
    monkeypatch.setenv("SENTINEL_DATABASE_URL", database_url)
    with sessions.begin() as session:
        lab_nl = make_key(session, ApiRole.LAB, make_organisation(session, "Lab C", country="NL"))
    labs = {"DE": keys["lab_a"], "FR": keys["lab_b"], "NL": lab_nl}

    # Routine: cocaine every day for 30 days in one country, in one batch.
    routine = [
        detection({"name": "cocaine"}, day(-34 + offset), "DE", technique="GC-MS")
        for offset in range(30)
    ]
    batch = client.post(
        "/v1/detections/batch", json={"detections": routine}, headers=auth(labs["DE"])
    )
    assert batch.status_code == 200, batch.text
    assert batch.json()["accepted"] == 30

    nitazene = [
        post(
            client,
            labs[country],
            detection(
                {"smiles": NITAZENE},
                day(offset),
                country,
                sample_type="biological",
                context="death",
            ),
        )
        for offset, country in [(-4, "DE"), (-2, "FR"), (0, "NL")]
    ]
    # The premise: no reference match, so the subject is a cluster, near potent nitazenes.
    assert {d["match"] is None for d in nitazene} == {True}
    assert len({d["cluster_id"] for d in nitazene}) == 1
    assert nitazene[0]["nearest"][0]["name"] in {"Etonitazene", "Protonitazene", "Isotonitazene"}
    for country in ("DE", "FR"):
        post(client, labs[country], detection({"name": CANNABINOID}, day(-1), country))
        post(client, labs[country], detection({"smiles": NEW_CATHINONE}, day(-1), country))
    return Seeded(labs, nitazene)


def alerts_of(client: TestClient, keys: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = officer_get(client, keys, "/v1/alerts", **params)["items"]
    return items


def nitazene_alert(client: TestClient, keys: dict[str, str], seeded: Seeded) -> dict[str, Any]:
    (alert,) = [
        a for a in alerts_of(client, keys) if a["subject"]["cluster_id"] == seeded.cluster_id
    ]
    return alert


def by_subject(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["subject"]["name"]: item for item in items}


def test_score_prints_alerts_and_the_list_keeps_the_contract(
    client: TestClient, keys: dict[str, str], seeded: Seeded
) -> None:
    output = score(AS_OF.isoformat())
    assert output.splitlines()[0] == "scored 4 subjects"
    nitazene_name = f"unidentified nitazene cluster #{seeded.cluster_id}"
    printed = {line.split("  ")[-2].strip(): line.split() for line in output.splitlines()[1:]}
    # A new nitazene analogue with deaths in three countries is critical at once.
    assert printed[nitazene_name][:2] == ["open", "critical"]
    assert printed[CANNABINOID][:2] == ["open", "advisory"]
    assert printed[f"unidentified cathinone cluster #{seeded.cluster_id + 1}"][:2] == [
        "open",
        "advisory",
    ]
    assert "Cocaine" not in output  # routine: scored, below any alert level

    page = officer_get(client, keys, "/v1/alerts")
    items = page["items"]
    assert len(items) == 3
    assert page["counts"] == {"info": 0, "advisory": 2, "warning": 0, "critical": 1}
    for item in items:
        assert set(item) >= CONTRACT, CONTRACT - set(item)
        assert set(item["subject"]) == SUBJECT_KEYS
        assert {c["name"] for c in item["components"]} == COMPONENT_NAMES
        for component in item["components"]:
            assert set(component) == COMPONENT_KEYS
            assert 0.0 <= component["value"] <= 1.0
            assert component["reason"]
        assert sum(c["weight"] for c in item["components"]) == pytest.approx(100.0)
        assert item["title"].startswith(item["level"].capitalize() + ": ")
    # Sorted by level, then by score, highest first.
    ranks = [(LEVEL_RANK[item["level"]], item["score"]) for item in items]
    assert ranks == sorted(ranks, reverse=True)
    assert items[0]["subject"]["name"] == nitazene_name
    assert items[1]["score"] > items[2]["score"]  # two advisories, ordered by score

    subjects = by_subject(items)
    assert subjects[nitazene_name]["subject"] == {
        "type": "cluster",
        "name": nitazene_name,
        "inchikey": None,
        "cluster_id": seeded.cluster_id,
    }
    assert subjects[CANNABINOID]["subject"] == {
        "type": "substance",
        "name": CANNABINOID,
        "inchikey": MDMB_INCHIKEY,
        "cluster_id": None,
    }
    # Critical is sent at once and flagged for an officer; the others wait for one.
    nitazene_alert = subjects[nitazene_name]
    assert nitazene_alert["status"] == "published"
    assert nitazene_alert["needs_review"] is True
    assert {item["status"] for item in items[1:]} == {"new"}
    assert nitazene_alert["countries"] == ["DE", "FR", "NL"]
    harm = next(c for c in nitazene_alert["components"] if c["name"] == "harm")
    assert "3 deaths" in harm["reason"]
    analogy = next(c for c in nitazene_alert["components"] if c["name"] == "potency_analogy")
    assert analogy["value"] > 0.5


def test_filters_status_level_and_since(
    client: TestClient, keys: dict[str, str], seeded: Seeded
) -> None:
    score(AS_OF.isoformat())
    everything = alerts_of(client, keys)
    critical = everything[0]["id"]
    assert [a["id"] for a in alerts_of(client, keys, level="critical")] == [critical]
    assert {a["level"] for a in alerts_of(client, keys, level="advisory")} == {"advisory"}
    assert len(alerts_of(client, keys, level="advisory")) == 2
    assert alerts_of(client, keys, level="warning") == []
    assert [a["id"] for a in alerts_of(client, keys, status="published")] == [critical]
    assert len(alerts_of(client, keys, status="new")) == 2
    assert alerts_of(client, keys, status="acknowledged") == []

    # Scored as of the end of AS_OF, so every alert was last updated then (also the critical
    # one, published at once: test_an_alert_published_at_once_is_updated_on_the_scoring_clock).
    start = datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC)
    assert len(alerts_of(client, keys, since=start.isoformat())) == 3
    assert alerts_of(client, keys, since=(start + timedelta(days=1)).isoformat()) == []

    acted = everything[-1]
    before = datetime.now(UTC) - timedelta(seconds=1)
    response = client.post(
        f"/v1/alerts/{acted['id']}/acknowledge", json={}, headers=auth(keys["officer"])
    )
    assert response.status_code == 200, response.text
    recent = alerts_of(client, keys, since=before.isoformat())
    assert [a["id"] for a in recent] == [acted["id"]]
    assert alerts_of(client, keys, since=before.isoformat(), level="critical") == []
    assert [a["id"] for a in alerts_of(client, keys, status="acknowledged")] == [acted["id"]]
    assert [a["id"] for a in alerts_of(client, keys, status="new")] == [everything[1]["id"]]
    assert alerts_of(client, keys, status="new", level="critical") == []
    assert [a["id"] for a in alerts_of(client, keys, status="acknowledged", level="advisory")] == [
        acted["id"]
    ]

    for params in ({"level": "severe"}, {"status": "open"}, {"since": "last week"}):
        bad = client.get("/v1/alerts", params=params, headers=auth(keys["officer"]))
        assert bad.status_code == 422, params
        assert bad.headers["content-type"] == "application/problem+json"


def test_an_alert_published_at_once_is_updated_on_the_scoring_clock(
    client: TestClient, keys: dict[str, str], seeded: Seeded
) -> None:
    score(AS_OF.isoformat())
    (critical,) = alerts_of(client, keys, level="critical")
    assert critical["published_at"] == critical["created_at"]
    assert critical["updated_at"] == critical["created_at"]


def test_alert_detail_has_its_history(
    client: TestClient, keys: dict[str, str], seeded: Seeded
) -> None:
    score(AS_OF.isoformat())
    alert = alerts_of(client, keys, level="critical")[0]
    detail = officer_get(client, keys, f"/v1/alerts/{alert['id']}")
    assert set(detail) >= CONTRACT
    assert {k: detail[k] for k in CONTRACT} == {k: alert[k] for k in CONTRACT}
    opened, published = detail["history"]
    assert (opened["action"], opened["actor"]) == ("open", "system")
    assert (opened["from_status"], opened["to_status"]) == (None, "new")
    assert opened["level"] == "critical"
    assert opened["score"] == pytest.approx(alert["score"])
    assert "critical" in opened["note"]
    assert (published["action"], published["actor"]) == ("publish", "system")
    assert (published["from_status"], published["to_status"]) == ("new", "published")

    advisory = alerts_of(client, keys, level="advisory")[0]
    history = officer_get(client, keys, f"/v1/alerts/{advisory['id']}")["history"]
    assert [event["action"] for event in history] == ["open"]

    missing = client.get("/v1/alerts/999999", headers=auth(keys["officer"]))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def audit_rows(sessions: sessionmaker[Session], alert_id: int) -> list[tuple[str, str, Any]]:
    with sessions() as session:
        rows = session.scalars(
            select(AuditLog)
            .where(AuditLog.object_type == "alert", AuditLog.object_id == str(alert_id))
            .order_by(AuditLog.id)
        ).all()
        return [(row.action, row.role, row.detail) for row in rows]


def act(
    client: TestClient, keys: dict[str, str], alert_id: int, action: str, note: str | None = None
) -> Any:
    body = {} if note is None else {"note": note}
    return client.post(f"/v1/alerts/{alert_id}/{action}", json=body, headers=auth(keys["officer"]))


def assert_conflict(response: Any) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 409
    assert "needs" in problem["detail"] or "only" in problem["detail"]


def test_each_action_works_is_audited_and_illegal_transitions_are_409(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    seeded: Seeded,
) -> None:
    score(AS_OF.isoformat())
    critical, first_advisory, second_advisory = (a["id"] for a in alerts_of(client, keys))

    # An advisory goes the whole way: acknowledge, escalate, publish, resolve.
    expected_status = {
        "acknowledge": "acknowledged",
        "escalate": "escalated",
        "publish": "published",
        "resolve": "resolved",
    }
    for number, (action, status) in enumerate(expected_status.items(), start=1):
        response = act(client, keys, first_advisory, action, note=f"step {number}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == status
        assert body["history"][-1]["action"] == action
        assert body["history"][-1]["note"] == f"step {number}"
        assert body["history"][-1]["to_status"] == status
        assert body["history"][-1]["actor"].startswith("snt_")  # the officer's key prefix
    audited = audit_rows(sessions, first_advisory)
    assert [row[0] for row in audited] == [f"alert.{action}" for action in expected_status]
    assert {row[1] for row in audited} == {"officer"}
    assert [row[2] for row in audited] == [{"note": f"step {n}"} for n in range(1, 5)]
    detail = officer_get(client, keys, f"/v1/alerts/{first_advisory}")
    assert detail["published_at"] is not None
    assert detail["resolved_at"] is not None
    assert [h["action"] for h in detail["history"]] == ["open", *expected_status]
    # Once resolved, nothing else applies.
    for action in ("acknowledge", "escalate", "publish", "resolve"):
        assert_conflict(act(client, keys, first_advisory, action))
    assert_conflict(act(client, keys, first_advisory, "dismiss", note="too late"))
    assert len(audit_rows(sessions, first_advisory)) == 4  # refused actions leave no audit row

    # The critical alert was published at once for review: acknowledging it records the review
    # (it stays published); it cannot be escalated, dismissed or published again; it resolves.
    reviewed = act(client, keys, critical, "acknowledge", note="seen")
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["status"] == "published"
    assert reviewed.json()["needs_review"] is False
    assert reviewed.json()["history"][-1]["action"] == "review"
    assert_conflict(act(client, keys, critical, "escalate"))
    assert_conflict(act(client, keys, critical, "dismiss", note="no"))
    assert_conflict(act(client, keys, critical, "publish"))
    resolved = act(client, keys, critical, "resolve")
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert [row[0] for row in audit_rows(sessions, critical)] == [
        "alert.acknowledge",
        "alert.resolve",
    ]

    # Dismissal needs a reason: 422 without, and nothing changes or is audited.
    for note in (None, "   "):
        refused = act(client, keys, second_advisory, "dismiss", note=note)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in refused.json()["errors"]] == ["note"]
    assert officer_get(client, keys, f"/v1/alerts/{second_advisory}")["status"] == "new"
    assert audit_rows(sessions, second_advisory) == []
    dismissed = act(client, keys, second_advisory, "dismiss", note="lab confirmed a standard")
    assert dismissed.status_code == 200
    assert dismissed.json()["status"] == "dismissed"
    for action in ("acknowledge", "escalate", "publish", "resolve"):
        assert_conflict(act(client, keys, second_advisory, action))
    assert [row[0] for row in audit_rows(sessions, second_advisory)] == ["alert.dismiss"]

    # Unknown actions and unknown fields in the body are refused.
    assert act(client, keys, second_advisory, "delete").status_code in (404, 422)
    extra = client.post(
        f"/v1/alerts/{second_advisory}/resolve",
        json={"note": "x", "force": True},
        headers=auth(keys["officer"]),
    )
    assert extra.status_code == 422


def test_a_lab_key_gets_403_on_alerts_and_scores(
    client: TestClient, keys: dict[str, str], seeded: Seeded
) -> None:
    score(AS_OF.isoformat())
    alert_id = alerts_of(client, keys)[0]["id"]
    lab = auth(keys["lab_a"])
    for response in (
        client.get("/v1/alerts", headers=lab),
        client.get(f"/v1/alerts/{alert_id}", headers=lab),
        client.post(f"/v1/alerts/{alert_id}/acknowledge", json={}, headers=lab),
        client.get(f"/v1/clusters/{seeded.cluster_id}/scores", headers=lab),
        client.get(f"/v1/substances/{MDMB_INCHIKEY}/scores", headers=lab),
    ):
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"
    # A subscriber reads only what it was sent (nothing yet) and cannot act.
    subscriber = auth(keys["subscriber"])
    assert client.get("/v1/alerts", headers=subscriber).json()["items"] == []
    assert client.get(f"/v1/alerts/{alert_id}", headers=subscriber).status_code == 404
    assert (
        client.post(f"/v1/alerts/{alert_id}/acknowledge", json={}, headers=subscriber).status_code
        == 403
    )
    assert client.get("/v1/alerts", headers={}).status_code == 401


def test_score_endpoints_return_the_history_with_components(
    client: TestClient, keys: dict[str, str], seeded: Seeded
) -> None:
    for at in (day(-2), day(-1), day(0)):
        score(at)
    history = officer_get(client, keys, f"/v1/clusters/{seeded.cluster_id}/scores")
    assert [point["as_of"] for point in history] == [day(-2), day(-1), day(0)]
    for point in history:
        assert set(point) == {"as_of", "score", "components"}
        assert {c["name"] for c in point["components"]} == COMPONENT_NAMES
        assert all(set(c) == COMPONENT_KEYS for c in point["components"])
    # The nitazene spreads: a second country with deaths on day -2, a third on day 0.
    assert history[0]["score"] < history[-1]["score"]
    latest_alert = alerts_of(client, keys, level="critical")[0]
    assert history[-1]["score"] == pytest.approx(latest_alert["score"])

    # The cannabinoid was first seen on day -1: its history starts there. The key is
    # case-insensitive.
    mdmb = officer_get(client, keys, f"/v1/substances/{MDMB_INCHIKEY.lower()}/scores")
    assert [point["as_of"] for point in mdmb] == [day(-1), day(0)]
    # Cocaine is scored every day even though it never opens an alert.
    cocaine = officer_get(client, keys, f"/v1/substances/{COCAINE_INCHIKEY}/scores")
    assert len(cocaine) == 3
    assert max(point["score"] for point in cocaine) < 30

    for path in ("/v1/clusters/999999/scores", "/v1/substances/AAAAAAAAAAAAAA-BBBBBBBBBB-N/scores"):
        missing = client.get(path, headers=auth(keys["officer"]))
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"


def score_rows(sessions: sessionmaker[Session]) -> list[tuple[str, date, float, list[Any]]]:
    with sessions() as session:
        return [
            (row.subject_key, row.as_of, row.score, row.components)
            for row in session.scalars(select(ThreatScore).order_by(ThreatScore.id))
        ]


def prevalence_reason(components: list[dict[str, Any]]) -> str:
    return str(next(c["reason"] for c in components if c["name"] == "prevalence"))


def test_a_rescore_on_the_same_day_replaces_that_days_score(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    seeded: Seeded,
) -> None:
    score(AS_OF.isoformat())
    first = score_rows(sessions)
    assert len(first) == 4
    assert len({(key, as_of) for key, as_of, _, _ in first}) == 4
    score(AS_OF.isoformat())
    assert [(k, a, s) for k, a, s, _ in score_rows(sessions)] == [(k, a, s) for k, a, s, _ in first]

    # One more nitazene detection on the same day (a fourth country) changes that day's score:
    # the row is replaced, not added, and the alert is updated, not duplicated.
    post(
        client,
        seeded.labs["DE"],
        detection({"smiles": NITAZENE}, day(0), "BE", sample_type="biological", context="death"),
    )
    score(AS_OF.isoformat())
    rows = score_rows(sessions)
    assert len(rows) == 4
    key = cluster_key(seeded.cluster_id)
    (before,) = [r for r in first if r[0] == key]
    (after,) = [r for r in rows if r[0] == key]
    assert "3 detections" in prevalence_reason(before[3])
    assert "4 detections" in prevalence_reason(after[3])
    assert after[2] > before[2]
    with sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(Alert).where(Alert.subject_key == key)
        )
        assert count == 1
    alert = nitazene_alert(client, keys, seeded)
    assert alert["countries"] == ["BE", "DE", "FR", "NL"]
    assert alert["score"] == pytest.approx(after[2])


def facts_of(sessions: sessionmaker[Session], key: str, as_of: date) -> Any:
    with sessions() as session:
        return next(facts for subject, facts in gather(session, as_of) if subject.key == key)


def test_scoring_counts_only_detections_up_to_at(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    seeded: Seeded,
) -> None:
    later = AS_OF + timedelta(days=10)
    post(
        client,
        seeded.labs["FR"],
        detection(
            {"smiles": NITAZENE}, later.isoformat(), "BE", sample_type="biological", context="death"
        ),
    )
    key = cluster_key(seeded.cluster_id)
    early = facts_of(sessions, key, AS_OF)
    assert (early.detections_90d, early.countries_90d, early.deaths_90d) == (3, 3, 3)
    assert early.total_detections == 3
    assert early.daily_counts[-1] == 1  # NL on AS_OF; nothing of the later day leaks in

    score(AS_OF.isoformat())
    (as_of_row,) = [r for r in score_rows(sessions) if r[0] == key]
    assert "3 detections" in prevalence_reason(as_of_row[3])
    alert = nitazene_alert(client, keys, seeded)
    assert alert["countries"] == ["DE", "FR", "NL"]  # BE comes later

    score(later.isoformat())
    late_row = next(r for r in score_rows(sessions) if r[0] == key and r[1] == later)
    assert "4 detections" in prevalence_reason(late_row[3])
    assert facts_of(sessions, key, later).detections_90d == 4
    alert = nitazene_alert(client, keys, seeded)
    assert alert["countries"] == ["BE", "DE", "FR", "NL"]

    # Before the first nitazene detection the cluster is not a subject at all.
    assert key not in {s.key for s, _ in _gather(sessions, AS_OF - timedelta(days=5))}


def _gather(sessions: sessionmaker[Session], as_of: date) -> list[Any]:
    with sessions() as session:
        return gather(session, as_of)


def test_a_withdrawn_detection_no_longer_counts(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    seeded: Seeded,
) -> None:
    score(AS_OF.isoformat())
    key = cluster_key(seeded.cluster_id)
    (before,) = [r for r in score_rows(sessions) if r[0] == key]

    withdrawn = seeded.nitazene[1]  # the FR detection, withdrawn by its own lab
    response = client.delete(f"/v1/detections/{withdrawn['id']}", headers=auth(seeded.labs["FR"]))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "withdrawn"

    facts = facts_of(sessions, key, AS_OF)
    assert (facts.detections_90d, facts.countries_90d, facts.deaths_90d) == (2, 2, 2)
    assert facts.total_detections == 2
    score(AS_OF.isoformat())
    (after,) = [r for r in score_rows(sessions) if r[0] == key]
    assert "2 detections" in prevalence_reason(after[3])
    assert after[2] < before[2]
    alert = nitazene_alert(client, keys, seeded)
    assert alert["countries"] == ["DE", "NL"]
    assert alert["score"] == pytest.approx(after[2])

    # The substance subject of the cannabinoid likewise drops to one country.
    mdmb = next(
        d
        for d in client.get(
            "/v1/detections", params={"substance": CANNABINOID}, headers=auth(seeded.labs["DE"])
        ).json()["items"]
    )
    client.delete(f"/v1/detections/{mdmb['id']}", headers=auth(seeded.labs["DE"]))
    facts = facts_of(sessions, substance_key(MDMB_INCHIKEY), AS_OF)
    assert (facts.detections_90d, facts.countries_90d) == (1, 1)


def test_a_dismissal_holds_until_the_subject_reaches_a_higher_level(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    seeded: Seeded,
) -> None:
    score(AS_OF.isoformat())
    (cannabinoid,) = [a for a in alerts_of(client, keys) if a["subject"]["name"] == CANNABINOID]
    assert cannabinoid["level"] == "advisory"
    response = act(client, keys, cannabinoid["id"], "dismiss", note="a reference standard")
    assert response.status_code == 200

    # Scored again, still advisory: no new alert, though the score is stored.
    score(AS_OF.isoformat())
    key = substance_key(MDMB_INCHIKEY)
    with sessions() as session:
        alerts = session.scalars(select(Alert).where(Alert.subject_key == key)).all()
        assert [(a.id, a.status.value) for a in alerts] == [(cannabinoid["id"], "dismissed")]
    assert [r for r in score_rows(sessions) if r[0] == key]

    # Deaths in three more countries: above the dismissed level, a new alert opens.
    for country in ("NL", "BE", "AT"):
        post(
            client,
            seeded.labs["NL"],
            detection({"name": CANNABINOID}, day(0), country, context="death"),
        )
    score(AS_OF.isoformat())
    with sessions() as session:
        alerts = session.scalars(
            select(Alert).where(Alert.subject_key == key).order_by(Alert.id)
        ).all()
        assert alerts[0].status.value == "dismissed"
        assert len(alerts) == 2
        assert alerts[1].dedup_key == f"{key}#2"
        assert alerts[1].level.value in ("warning", "critical")
