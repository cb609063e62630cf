"""The thin end-to-end path: a lab posts a detection; it and officers read it; others get 404."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import auth

AMPHETAMINE_HCL = "CC(N)Cc1ccccc1.Cl"


def detection(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "substance": {"smiles": AMPHETAMINE_HCL},
        "detected_on": "2026-03-02",
        "country": "DE",
        "sample_type": "seizure",
    }
    body.update(overrides)
    return body


def test_lab_posts_a_detection_and_reads_it_back(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post(
        "/v1/detections",
        json=detection(region="DE-BY", purity_percent=42.5),
        headers=auth(keys["lab_a"]),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["inchikey"] == "KWTSXDURSIMDCE-UHFFFAOYSA-N"  # amphetamine, free base
    assert created["smiles"] == "CC(N)Cc1ccccc1"
    assert created["formula"] == "C9H13N"
    assert created["region"] == "DE-BY"

    read = client.get(f"/v1/detections/{created['id']}", headers=auth(keys["lab_a"]))
    assert read.status_code == 200
    assert read.json() == created


def test_officer_reads_any_labs_detection(client: TestClient, keys: dict[str, str]) -> None:
    created = client.post("/v1/detections", json=detection(), headers=auth(keys["lab_a"])).json()
    response = client.get(f"/v1/detections/{created['id']}", headers=auth(keys["officer"]))
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]


def test_another_labs_detection_is_404(client: TestClient, keys: dict[str, str]) -> None:
    created = client.post("/v1/detections", json=detection(), headers=auth(keys["lab_a"])).json()
    response = client.get(f"/v1/detections/{created['id']}", headers=auth(keys["lab_b"]))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    missing = client.get("/v1/detections/999999", headers=auth(keys["lab_b"]))
    assert missing.json()["detail"] == response.json()["detail"].replace(
        str(created["id"]), "999999"
    )


def errors_of(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {error["field"]: error["reason"] for error in response.json()["errors"]}


def test_unknown_field_is_422_naming_it(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post(
        "/v1/detections", json=detection(colour="blue"), headers=auth(keys["lab_a"])
    )
    assert errors_of(response) == {"colour": "unknown field"}


def test_malformed_smiles_is_422_with_rdkit_reason(
    client: TestClient, keys: dict[str, str]
) -> None:
    response = client.post(
        "/v1/detections",
        json=detection(substance={"smiles": "C1CC(N"}),
        headers=auth(keys["lab_a"]),
    )
    errors = errors_of(response)
    assert list(errors) == ["substance.smiles"]
    assert "while parsing: C1CC(N" in errors["substance.smiles"]
    assert "position" in errors["substance.smiles"]


def test_impossible_valence_is_422_with_rdkit_reason(
    client: TestClient, keys: dict[str, str]
) -> None:
    response = client.post(
        "/v1/detections",
        json=detection(substance={"smiles": "CC(C)(C)(C)(C)C"}),
        headers=auth(keys["lab_a"]),
    )
    assert "valence" in errors_of(response)["substance.smiles"].lower()


@pytest.mark.parametrize(
    ("overrides", "field", "reason_part"),
    [
        ({"country": "XX"}, "country", "ISO 3166-1"),
        ({"country": "DE", "region": "FR-IDF"}, "region", "not in country DE"),
        ({"region": "ZZ-99"}, "region", "ISO 3166-2"),
        ({"technique": "sniffing"}, "technique", "Input should be"),
        ({"context": "party"}, "context", "Input should be"),
        ({"quantity": {"value": -1, "unit": "g"}}, "quantity.value", "greater than 0"),
        ({"lab_reference": ""}, "lab_reference", "at least 1"),
        ({"substance": {"smiles": "C" * 1001}}, "substance.smiles", "at most 1000"),
        ({"detected_on": "yesterday"}, "detected_on", "valid date"),
        ({"detected_on": "1989-12-31"}, "detected_on", "1990"),
        ({"detected_on": "2999-01-01"}, "detected_on", "future"),
        ({"sample_type": "lorry"}, "sample_type", "Input should be"),
        ({"purity_percent": 120}, "purity_percent", "100"),
        ({"substance": {"smiles": "CCO", "name": "ethanol"}}, "substance", "exactly one"),
        ({"substance": {}}, "substance", "exactly one"),
    ],
)
def test_invalid_fields_are_422_naming_field_and_reason(
    client: TestClient,
    keys: dict[str, str],
    overrides: dict[str, Any],
    field: str,
    reason_part: str,
) -> None:
    errors = errors_of(
        client.post("/v1/detections", json=detection(**overrides), headers=auth(keys["lab_a"]))
    )
    assert field in errors, errors
    assert reason_part in errors[field]


def test_unknown_name_is_accepted_as_unidentified(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post(
        "/v1/detections",
        json=detection(substance={"name": "Totally-New-Thing-9000"}),
        headers=auth(keys["lab_a"]),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["unidentified"] is True
    assert body["inchikey"] is None
    assert body["match"] is None


def test_no_stack_trace_reaches_the_client(app: Any, keys: dict[str, str]) -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text


def test_oversized_body_is_413(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post(
        "/v1/detections",
        content=b"{" + b" " * 3_000_000 + b"}",
        headers={**auth(keys["lab_a"]), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
