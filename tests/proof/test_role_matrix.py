"""Role x route matrix, generated from the OpenAPI document: every operation but the health
checks needs a key, each role gets exactly the access the design gives it, and a lab never sees
another lab's raw submissions.

The design (ARCHITECTURE.md "Who uses it", issues 2, 5, 6 and 7): labs post, correct, withdraw
and read their own detections and use structure analysis and the reference library; officers
read every detection, triage alerts, read score histories and use analysis and the library;
subscribers read the alerts they were sent and the CAP feed, nothing else; admins may do
everything, including subscribers, webhooks and deliveries.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.db import utc_now
from app.main import create_app
from app.models import ApiKey
from app.models.enums import ApiRole, OrganisationKind
from app.openapi import allowed_roles
from app.security import split_api_key
from app.settings import Settings
from reference_standards import Library
from tests.conftest import auth, make_key, make_organisation
from tests.proof.support import (
    KEY_OF_ROLE,
    ROLES,
    World,
    loopback_webhooks,
    post_detection,
    seed,
)

LAB, OFFICER, SUBSCRIBER, ADMIN = "lab", "officer", "subscriber", "admin"
PUBLIC = frozenset({"anyone, without a key"})
LABS = frozenset({LAB, ADMIN})
DETECTION_READERS = frozenset({LAB, OFFICER, ADMIN})
ANALYSTS = frozenset({LAB, OFFICER, ADMIN})
OFFICERS = frozenset({OFFICER, ADMIN})
ALERT_READERS = frozenset({OFFICER, SUBSCRIBER, ADMIN})
ADMINS = frozenset({ADMIN})

# Who may call each operation. A new operation fails test_every_operation_is_in_the_matrix
# until it gets a line here.
MATRIX: dict[str, frozenset[str]] = {
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    "POST /v1/detections": LABS,
    "POST /v1/detections/batch": LABS,
    "GET /v1/detections": DETECTION_READERS,
    "GET /v1/detections/{detection_id}": DETECTION_READERS,
    "PATCH /v1/detections/{detection_id}": LABS,
    "DELETE /v1/detections/{detection_id}": LABS,
    "POST /v1/analyse": ANALYSTS,
    "POST /v1/analyse/mass": ANALYSTS,
    "GET /v1/substances": ANALYSTS,
    "GET /v1/substances/{inchikey}": ANALYSTS,
    "GET /v1/alerts": ALERT_READERS,
    "GET /v1/alerts/{alert_id}": ALERT_READERS,
    "POST /v1/alerts/{alert_id}/{action}": OFFICERS,
    "GET /v1/alerts/{alert_id}/cap": ALERT_READERS,
    "GET /v1/feeds/cap": ALERT_READERS,
    "GET /v1/substances/{inchikey}/scores": OFFICERS,
    "GET /v1/clusters/{cluster_id}/scores": OFFICERS,
    "GET /v1/subscribers": ADMINS,
    "POST /v1/subscribers": ADMINS,
    "GET /v1/subscribers/{subscriber_id}": ADMINS,
    "POST /v1/webhooks/{endpoint_id}/rotate-secret": ADMINS,
    "POST /v1/webhooks/{endpoint_id}/enable": ADMINS,
    "GET /v1/deliveries": ADMINS,
    "POST /v1/deliveries/{delivery_id}/replay": ADMINS,
    "POST /v1/deliveries/replay": ADMINS,
}

# A valid body for each operation that takes one (a request a permitted role could send).
BODIES: dict[str, Any] = {
    "POST /v1/detections": {
        "substance": {"smiles": "CCN(CC)C(=O)C1CN(C)C2CC3=CNC4=CC=CC(=C34)C2=C1"},
        "detected_on": (date.today() - timedelta(days=1)).isoformat(),
        "country": "AT",
        "sample_type": "seizure",
    },
    "POST /v1/detections/batch": {
        "detections": [{"substance": {"name": "caffeine"}, "detected_on": "2025-03-01"}]
    },
    "PATCH /v1/detections/{detection_id}": {"purity_percent": 42.5},
    "POST /v1/analyse": {"smiles": "CC(N)Cc1ccccc1"},
    "POST /v1/analyse/mass": {"mz": 136.1121},
    "POST /v1/alerts/{alert_id}/{action}": {"note": "looked at it"},
    "POST /v1/subscribers": {
        "name": "Regional police",
        "kind": "law_enforcement",
        "channels": [{"type": "email", "address": "duty@police.example"}],
    },
    "POST /v1/deliveries/replay": {"since": "2026-01-01T00:00:00Z"},
}
QUERIES: dict[str, dict[str, str]] = {"GET /v1/substances": {"name": "amph"}}
CONSOLE_LOGIN = "/console/login"
CONSOLE_PARAMS = {
    "inchikey": "KWTSXDURSIMDCE-UHFFFAOYSA-N",
    "action": "acknowledge",
    "change": "disable",
}
# Not operations of the API: FastAPI's own pages about the API, public like the API's
# documentation anywhere; they expose no data.
API_DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}

DOCUMENT = create_app(Settings(database_url="sqlite://")).openapi()
OPERATIONS = {
    f"{method.upper()} {path}": operation
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
}


def url_for(label: str, world: World | None) -> str:
    path = label.split(" ", 1)[1]
    values = {
        "detection_id": world.detection_a if world else 1,
        "alert_id": world.alert_id if world else 1,
        "action": "acknowledge",
        "inchikey": world.inchikey if world else "KWTSXDURSIMDCE-UHFFFAOYSA-N",
        "cluster_id": 1,
        "subscriber_id": world.subscriber_id if world else 1,
        "endpoint_id": world.endpoint_id if world else 1,
        "delivery_id": world.delivery_id if world else 1,
    }
    return path.format(**values)


def call(client: TestClient, label: str, world: World | None, headers: dict[str, str]) -> Any:
    method = label.split(" ", 1)[0]
    body = BODIES.get(label)
    if "requestBody" in OPERATIONS[label]:
        assert body is not None, f"add an example body for {label} to BODIES"
    return client.request(
        method,
        url_for(label, world),
        json=body,
        params=QUERIES.get(label),
        headers=headers,
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return loopback_webhooks(settings)


@pytest.fixture
def world(
    client: TestClient,
    sessions: sessionmaker[Session],
    keys: dict[str, str],
    loaded_references: Library,
) -> World:
    return seed(client, sessions, keys)


def revoke(sessions: sessionmaker[Session], key: str) -> None:
    with sessions.begin() as session:
        session.execute(
            update(ApiKey).where(ApiKey.prefix == split_api_key(key)).values(revoked_at=utc_now())
        )


def flat_routes(routes: list[Any]) -> list[Any]:
    """Every route of the app (FastAPI 0.16x wraps each included router in one route object;
    main.py includes routers without a prefix of their own)."""
    found = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        found.extend(flat_routes(inner.routes) if inner is not None else [route])
    return found


# ---- the matrix covers the API ---------------------------------------------------------


def test_every_operation_is_in_the_matrix() -> None:
    assert sorted(OPERATIONS) == sorted(MATRIX)


def test_the_documented_roles_are_the_matrix() -> None:
    for label, operation in OPERATIONS.items():
        documented = allowed_roles(operation)
        expected = None if MATRIX[label] is PUBLIC else set(MATRIX[label])
        assert documented == expected, label


def test_every_route_is_in_the_schema_or_is_the_console(app: Any) -> None:
    """Routes outside the OpenAPI document are the console's (session login, tested in
    tests/web and below) and FastAPI's pages about the API itself."""
    outside = []
    for route in flat_routes(app.routes):
        path = getattr(route, "path_format", getattr(route, "path", ""))
        methods = getattr(route, "methods", None) or {"GET"}
        in_schema = all(f"{method} {path}" in OPERATIONS for method in methods - {"HEAD"})
        if not (in_schema or path in API_DOCUMENTATION or path.startswith("/console")):
            outside.append(f"{sorted(methods)} {path}")
    assert outside == []


# ---- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_operation_but_the_health_checks_needs_a_valid_key(
    label: str, client: TestClient, keys: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    if MATRIX[label] is PUBLIC:
        assert call(client, label, None, {}).status_code == 200
        return
    admin = keys["admin"]
    revoke(sessions, admin)
    for headers in ({}, auth(admin), {"X-API-Key": admin}, auth("snt_00000000_" + "x" * 43)):
        response = call(client, label, None, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_console_pages_need_a_session_not_an_api_key(
    app: Any, client: TestClient, keys: dict[str, str]
) -> None:
    """Every console route but the login page redirects to it (GET) or refuses (POST) when no
    officer is signed in, whatever API key is sent."""
    open_pages = []
    for route in flat_routes(app.routes):
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None)
        if not path.startswith("/console") or methods is None or path == CONSOLE_LOGIN:
            continue
        url = re.sub(r"\{(\w+)[^}]*\}", lambda m: CONSOLE_PARAMS.get(m[1], "1"), path)
        for method in sorted(methods - {"HEAD"}):
            for headers in ({}, auth(keys["admin"])):
                # Follow redirects: /console itself sends on to a page that asks for login.
                response = client.request(method, url, headers=headers)
                refused = response.status_code in (401, 403) or (
                    response.status_code == 200 and response.url.path == CONSOLE_LOGIN
                )
                if not refused:
                    open_pages.append(f"{method} {url}: {response.status_code}")
    assert open_pages == []
    assert client.get(CONSOLE_LOGIN).status_code == 200


# ---- roles -------------------------------------------------------------------------------


@pytest.mark.parametrize("label", sorted(label for label in MATRIX if MATRIX[label] is not PUBLIC))
def test_each_role_gets_exactly_the_access_the_design_gives_it(
    label: str, client: TestClient, keys: dict[str, str], world: World
) -> None:
    answers = {}
    for role in ROLES:
        response = call(client, label, world, auth(keys[KEY_OF_ROLE[role]]))
        answers[role] = response.status_code
        if role in MATRIX[label]:
            assert response.status_code not in (401, 403), (role, response.text)
            assert response.status_code < 500, (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.headers["content-type"] == "application/problem+json"


def test_permitted_roles_get_the_objects_the_design_gives_them(
    client: TestClient, keys: dict[str, str], world: World
) -> None:
    def get(path: str, key: str) -> int:
        return client.get(path, headers=auth(keys[key])).status_code

    detection = f"/v1/detections/{world.detection_a}"
    assert [get(detection, key) for key in ("lab_a", "officer", "admin")] == [200, 200, 200]
    alert = f"/v1/alerts/{world.alert_id}"
    assert [get(alert, key) for key in ("officer", "subscriber", "admin")] == [200, 200, 200]
    assert get(f"{alert}/cap", "subscriber") == 200
    assert get(f"/v1/substances/{world.inchikey}/scores", "officer") == 200
    assert get(f"/v1/subscribers/{world.subscriber_id}", "admin") == 200


# ---- object-level isolation -------------------------------------------------------------


def test_lab_a_never_sees_lab_b_raw_submissions(
    client: TestClient, keys: dict[str, str], world: World
) -> None:
    lab_a, lab_b = auth(keys["lab_a"]), auth(keys["lab_b"])
    theirs = f"/v1/detections/{world.detection_b}"
    before = client.get(theirs, headers=lab_b).json()
    own = client.get(f"/v1/detections/{world.detection_a}", headers=lab_a).json()

    assert client.get(theirs, headers=lab_a).status_code == 404
    assert client.patch(theirs, json={"purity_percent": 1.0}, headers=lab_a).status_code == 404
    assert client.delete(theirs, headers=lab_a).status_code == 404
    # Indistinguishable from an id that does not exist.
    missing = client.get("/v1/detections/2147483647", headers=lab_a).json()
    assert client.get(theirs, headers=lab_a).json()["title"] == missing["title"]

    assert client.get(theirs, headers=lab_b).json() == before  # untouched
    for query in ({}, {"status": "withdrawn"}, {"country": "FR"}, {"limit": 500}):
        listed = client.get("/v1/detections", params=query, headers=lab_a).json()["items"]
        assert world.detection_b not in [item["id"] for item in listed], query
        assert {item["organisation_id"] for item in listed} <= {own["organisation_id"]}


def test_lab_a_list_holds_only_its_own_and_officers_see_both(
    client: TestClient, keys: dict[str, str], world: World
) -> None:
    listed_a = client.get("/v1/detections", headers=auth(keys["lab_a"])).json()["items"]
    listed_b = client.get("/v1/detections", headers=auth(keys["lab_b"])).json()["items"]
    everything = client.get("/v1/detections", headers=auth(keys["officer"])).json()["items"]

    assert [item["id"] for item in listed_a] == [world.detection_a]
    assert [item["id"] for item in listed_b] == [world.detection_b]
    assert {world.detection_a, world.detection_b} <= {item["id"] for item in everything}


def test_a_shared_idempotency_key_does_not_replay_another_labs_submission(
    client: TestClient, keys: dict[str, str], world: World
) -> None:
    same_key = {"Idempotency-Key": "import-2026-03-01"}
    body = BODIES["POST /v1/detections"]
    first = client.post("/v1/detections", json=body, headers=auth(keys["lab_b"]) | same_key)
    second = client.post("/v1/detections", json=body, headers=auth(keys["lab_a"]) | same_key)

    assert first.status_code == second.status_code == 201
    assert "idempotency-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["organisation_id"] != first.json()["organisation_id"]


def test_a_subscriber_sees_only_the_alerts_its_organisation_was_sent(
    client: TestClient, sessions: sessionmaker[Session], world: World
) -> None:
    with sessions.begin() as session:
        other = make_organisation(session, "Customs", OrganisationKind.AGENCY)
        outsider = make_key(session, ApiRole.SUBSCRIBER, other)
    headers = auth(outsider)

    assert client.get(f"/v1/alerts/{world.alert_id}", headers=headers).status_code == 404
    assert client.get(f"/v1/alerts/{world.alert_id}/cap", headers=headers).status_code == 404
    assert client.get("/v1/alerts", headers=headers).json()["items"] == []
    assert "<entry>" not in client.get("/v1/feeds/cap", headers=headers).text


def test_a_lab_cannot_post_a_detection_for_another_lab(
    client: TestClient, keys: dict[str, str], world: World
) -> None:
    body = BODIES["POST /v1/detections"] | {"organisation_id": 1}
    response = client.post("/v1/detections", json=body, headers=auth(keys["lab_a"]))
    assert response.status_code == 422  # unknown field: the lab is the key's, never the body's
    created = post_detection(client, keys["lab_a"], "CC(N)Cc1ccccc1", country="PL")
    theirs = client.get(f"/v1/detections/{world.detection_b}", headers=auth(keys["officer"]))
    assert created["organisation_id"] != theirs.json()["organisation_id"]
