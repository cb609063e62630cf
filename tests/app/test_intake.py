"""Detection intake: batches, idempotency, listing, corrections, withdrawals and authorization."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.models import AuditLog, Detection, IdempotencyRecord
from tests.conftest import auth


def record(smiles: str = "CC(N)Cc1ccccc1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "substance": {"smiles": smiles},
        "detected_on": "2026-03-02",
        "country": "DE",
        "sample_type": "seizure",
    }
    body.update(overrides)
    return body


def count_detections(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return session.scalar(select(func.count()).select_from(Detection)) or 0


def test_batch_stores_good_records_and_reports_bad_ones_in_order(
    client: TestClient, keys: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    records = [
        record(lab_reference="S-1"),
        record(smiles="C1CC"),  # unclosed ring
        record(country="QQ"),
        record(smiles="CCN(CC)C(=O)C1CN(C)C2CC3=CNC4=CC=CC(=C34)C2=C1", lab_reference="S-2"),
        record(lab_reference="S-1"),  # duplicate of the first record's lab_reference
        {"detected_on": "2026-01-01"},  # fields missing
    ]
    response = client.post(
        "/v1/detections/batch", json={"detections": records}, headers=auth(keys["lab_a"])
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 4)
    statuses = [(r["index"], r["status"]) for r in body["results"]]
    assert statuses == [
        (0, "accepted"),
        (1, "rejected"),
        (2, "rejected"),
        (3, "accepted"),
        (4, "rejected"),
        (5, "rejected"),
    ]
    fields = {r["index"]: {e["field"] for e in r["errors"]} for r in body["results"]}
    assert fields[1] == {"substance.smiles"}
    assert fields[2] == {"country"}
    assert fields[4] == {"lab_reference"}
    assert {"substance", "country", "sample_type"} <= fields[5]
    assert count_detections(sessions) == 2
    stored = client.get(
        f"/v1/detections/{body['results'][3]['detection']['id']}", headers=auth(keys["lab_a"])
    ).json()
    assert stored["lab_reference"] == "S-2"


def test_batch_size_is_capped(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post(
        "/v1/detections/batch", json={"detections": [record()] * 1001}, headers=auth(keys["lab_a"])
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "detections"


def test_retry_with_same_key_and_body_replays_the_first_response(
    client: TestClient, keys: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    headers = {**auth(keys["lab_a"]), "Idempotency-Key": "abc-123"}
    first = client.post("/v1/detections", json=record(), headers=headers)
    second = client.post("/v1/detections", json=record(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotency-replayed"] == "true"
    assert count_detections(sessions) == 1


def test_same_key_with_a_different_body_is_422(client: TestClient, keys: dict[str, str]) -> None:
    headers = {**auth(keys["lab_a"]), "Idempotency-Key": "abc-123"}
    client.post("/v1/detections", json=record(), headers=headers)
    response = client.post("/v1/detections", json=record(country="FR"), headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "header.Idempotency-Key"


def test_idempotency_keys_are_scoped_to_the_lab(
    client: TestClient, keys: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    for lab in ("lab_a", "lab_b"):
        response = client.post(
            "/v1/detections",
            json=record(),
            headers={**auth(keys[lab]), "Idempotency-Key": "shared"},
        )
        assert response.status_code == 201
    assert count_detections(sessions) == 2


def test_a_failed_request_frees_its_key(
    client: TestClient, keys: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    headers = {**auth(keys["lab_a"]), "Idempotency-Key": "retry-me"}
    assert (
        client.post("/v1/detections", json=record(smiles="C1CC"), headers=headers).status_code
        == 422
    )
    with sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0


def test_concurrent_duplicate_is_409(
    client: TestClient, keys: dict[str, str], sessions: sessionmaker[Session], app: Any
) -> None:
    """While the first request holds the key, a duplicate is told to wait (409)."""
    from app.detections import service

    entered, release = threading.Event(), threading.Event()
    original = service.create

    def slow_create(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(10)
        return original(*args, **kwargs)

    headers = {**auth(keys["lab_a"]), "Idempotency-Key": "concurrent"}
    results: dict[str, int] = {}
    service.create = slow_create  # type: ignore[assignment]
    try:
        first = threading.Thread(
            target=lambda: results.__setitem__(
                "first", client.post("/v1/detections", json=record(), headers=headers).status_code
            )
        )
        first.start()
        assert entered.wait(10)
        service.create = original  # type: ignore[assignment]
        duplicate = client.post("/v1/detections", json=record(), headers=headers)
        release.set()
        first.join(10)
    finally:
        service.create = original  # type: ignore[assignment]
        release.set()
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == "application/problem+json"
    assert results["first"] == 201
    assert count_detections(sessions) == 1


def test_listing_filters_and_pages(client: TestClient, keys: dict[str, str]) -> None:
    lab = auth(keys["lab_a"])
    for day in range(1, 8):
        client.post(
            "/v1/detections",
            json=record(
                detected_on=f"2026-02-0{day}",
                country="DE" if day % 2 else "AT",
                context="death" if day == 3 else None,
            ),
            headers=lab,
        )
    client.post("/v1/detections", json=record(), headers=auth(keys["lab_b"]))

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/detections", params=params, headers=lab).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7  # own only
    assert seen == sorted(seen, reverse=True)  # newest first

    def ids(**params: Any) -> int:
        return len(client.get("/v1/detections", params=params, headers=lab).json()["items"])

    assert ids(country="AT") == 3
    assert ids(detected_from="2026-02-03", detected_to="2026-02-05") == 3
    assert ids(context="death") == 1
    assert ids(substance="KWTSXDURSIMDCE-UHFFFAOYSA-N") == 7
    officer_view = client.get("/v1/detections", headers=auth(keys["officer"])).json()
    assert len(officer_view["items"]) == 8


def test_bad_cursor_is_422(client: TestClient, keys: dict[str, str]) -> None:
    response = client.get(
        "/v1/detections", params={"cursor": "garbage!"}, headers=auth(keys["lab_a"])
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.cursor"


def test_lab_corrects_its_detection_and_the_change_is_audited(
    client: TestClient, keys: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    created = client.post("/v1/detections", json=record(), headers=auth(keys["lab_a"])).json()
    response = client.patch(
        f"/v1/detections/{created['id']}",
        json={"substance": {"smiles": "CNC(C)Cc1ccccc1"}, "purity_percent": 80},
        headers=auth(keys["lab_a"]),
    )
    assert response.status_code == 200, response.text
    corrected = response.json()
    assert corrected["inchikey"] == "MYWUZJCMWCOHBA-UHFFFAOYSA-N"  # methamphetamine
    assert corrected["purity_percent"] == 80
    assert corrected["country"] == "DE"  # untouched fields stay
    with sessions.begin() as session:
        row = session.scalar(select(AuditLog).where(AuditLog.action == "detection.correct"))
        assert row is not None
        assert row.detail["changes"]["purity_percent"] == {"before": None, "after": 80.0}


def test_a_correction_may_keep_its_lab_reference_but_not_take_anothers(
    client: TestClient, keys: dict[str, str]
) -> None:
    lab = auth(keys["lab_a"])
    first = client.post("/v1/detections", json=record(lab_reference="R-1"), headers=lab).json()
    second = client.post("/v1/detections", json=record(lab_reference="R-2"), headers=lab).json()
    kept = client.patch(
        f"/v1/detections/{first['id']}",
        json={"lab_reference": "R-1", "purity_percent": 12},
        headers=lab,
    )
    assert kept.status_code == 200, kept.text
    taken = client.patch(
        f"/v1/detections/{second['id']}", json={"lab_reference": "R-1"}, headers=lab
    )
    assert taken.status_code == 409
    assert str(first["id"]) in taken.json()["detail"]


def test_correction_is_validated_like_a_new_detection(
    client: TestClient, keys: dict[str, str]
) -> None:
    created = client.post("/v1/detections", json=record(), headers=auth(keys["lab_a"])).json()
    response = client.patch(
        f"/v1/detections/{created['id']}", json={"region": "FR-IDF"}, headers=auth(keys["lab_a"])
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "region"


def test_withdrawal_keeps_the_record_but_hides_it_from_listings(
    client: TestClient, keys: dict[str, str]
) -> None:
    lab = auth(keys["lab_a"])
    created = client.post("/v1/detections", json=record(), headers=lab).json()
    withdrawn = client.delete(f"/v1/detections/{created['id']}", headers=lab)
    assert withdrawn.status_code == 200
    assert withdrawn.json()["status"] == "withdrawn"
    assert (
        client.get(f"/v1/detections/{created['id']}", headers=lab).json()["status"] == "withdrawn"
    )
    assert client.get("/v1/detections", headers=lab).json()["items"] == []
    assert (
        len(
            client.get("/v1/detections", params={"status": "withdrawn"}, headers=lab).json()[
                "items"
            ]
        )
        == 1
    )
    assert client.delete(f"/v1/detections/{created['id']}", headers=lab).status_code == 409
    assert (
        client.patch(
            f"/v1/detections/{created['id']}", json={"purity_percent": 1}, headers=lab
        ).status_code
        == 409
    )


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_lab_cannot_touch_another_labs_detection(
    client: TestClient, keys: dict[str, str], method: str
) -> None:
    created = client.post("/v1/detections", json=record(), headers=auth(keys["lab_a"])).json()
    kwargs: dict[str, Any] = {"json": {"purity_percent": 5}} if method == "patch" else {}
    response = getattr(client, method)(
        f"/v1/detections/{created['id']}", headers=auth(keys["lab_b"]), **kwargs
    )
    assert response.status_code == 404
    untouched = client.get(f"/v1/detections/{created['id']}", headers=auth(keys["lab_a"])).json()
    assert untouched["status"] == "active"
    assert untouched["purity_percent"] is None


def test_officers_cannot_correct_labs_data(client: TestClient, keys: dict[str, str]) -> None:
    created = client.post("/v1/detections", json=record(), headers=auth(keys["lab_a"])).json()
    response = client.patch(
        f"/v1/detections/{created['id']}", json={"purity_percent": 5}, headers=auth(keys["officer"])
    )
    assert response.status_code == 403
