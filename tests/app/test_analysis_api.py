"""Analysis, mass screening and clustering through the API, with the full reference library."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from reference_standards import Library
from tests.conftest import auth

# 4'-cyclopropylmethoxy analogue of isotonitazene: a plausible new nitazene, not in the library.
NEW_NITAZENE = "CCN(CC)CCn1c(Cc2ccc(OCC3CC3)cc2)nc2cc([N+](=O)[O-])ccc21"
NEW_NITAZENE_HOMOLOGUE = "CCN(CC)CCn1c(Cc2ccc(OCC3CCC3)cc2)nc2cc([N+](=O)[O-])ccc21"
MDMB_PINACA = "CCCCCn1nc(C(=O)NC(C(=O)OC)C(C)(C)C)c2ccccc21"  # SCRA without a reference here


@pytest.fixture
def library(loaded_references: Library) -> Library:
    return loaded_references


def test_analyse_returns_every_contract_key(
    client: TestClient, keys: dict[str, str], library: Library
) -> None:
    response = client.post(
        "/v1/analyse", json={"smiles": NEW_NITAZENE}, headers=auth(keys["lab_a"])
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "input",
        "smiles",
        "inchikey",
        "formula",
        "exact_mass",
        "chemical_group",
        "effect_group",
        "effect_confidence",
        "match",
        "nearest",
        "analogue_of",
        "generic_definitions",
        "error",
    }
    assert body["chemical_group"] == "nitazene"
    assert body["effect_group"] == "opioid"
    assert body["match"] is None
    assert "Etonitazene" in body["analogue_of"]
    assert body["nearest"][0]["similarity"] >= body["nearest"][-1]["similarity"]
    assert any(d["id"] == "de-npsg-benzimidazole-opioids" for d in body["generic_definitions"])


def test_a_salt_matches_its_reference_standard(
    client: TestClient, keys: dict[str, str], library: Library
) -> None:
    fentanyl_citrate = "CCC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1.OC(=O)CC(O)(CC(=O)O)C(=O)O"
    body = client.post(
        "/v1/analyse", json={"smiles": fentanyl_citrate}, headers=auth(keys["officer"])
    ).json()
    assert body["match"]["name"].lower() == "fentanyl"
    assert body["effect_confidence"] == 1.0


def test_analyse_rejects_bad_structures_with_422(
    client: TestClient, keys: dict[str, str], library: Library
) -> None:
    response = client.post(
        "/v1/analyse", json={"inchi": "InChI=1S/garbage"}, headers=auth(keys["lab_a"])
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.inchi"
    both = client.post(
        "/v1/analyse",
        json={"smiles": "C", "inchi": "InChI=1S/CH4/h1H4"},
        headers=auth(keys["lab_a"]),
    )
    assert both.status_code == 422


def test_mass_screen_ranks_fentanyl_for_its_protonated_ion(
    client: TestClient, keys: dict[str, str], library: Library
) -> None:
    # Fentanyl C22H28N2O: monoisotopic 336.22016, [M+H]+ 337.22744.
    response = client.post(
        "/v1/analyse/mass", json={"mz": 337.2274, "tolerance_ppm": 5}, headers=auth(keys["lab_a"])
    )
    assert response.status_code == 200
    names = [candidate["name"].lower() for candidate in response.json()]
    assert "fentanyl" in names
    assert all(abs(c["ppm_error"]) <= 5 for c in response.json())


def post(client: TestClient, key: str, substance: dict[str, str], **extra: Any) -> dict[str, Any]:
    body = {
        "substance": substance,
        "detected_on": "2026-05-01",
        "country": "DE",
        "sample_type": "seizure",
        **extra,
    }
    response = client.post("/v1/detections", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_unidentified_structures_form_clusters(
    client: TestClient, keys: dict[str, str], library: Library
) -> None:
    first = post(client, keys["lab_a"], {"smiles": NEW_NITAZENE})
    homologue = post(client, keys["lab_b"], {"smiles": NEW_NITAZENE_HOMOLOGUE})
    scra = post(client, keys["lab_a"], {"smiles": MDMB_PINACA})
    known = post(client, keys["lab_a"], {"name": "fentanyl"})

    assert first["cluster_id"] is not None
    assert homologue["cluster_id"] == first["cluster_id"]
    assert scra["cluster_id"] not in (None, first["cluster_id"])
    assert known["cluster_id"] is None  # identified substances are not clustered
    assert known["match"]["name"].lower() == "fentanyl"
    assert known["inchikey"] == "PJMPHNIQZUBGLI-UHFFFAOYSA-N"

    listed = client.get(
        "/v1/detections", params={"cluster_id": first["cluster_id"]}, headers=auth(keys["officer"])
    ).json()["items"]
    assert {item["id"] for item in listed} == {first["id"], homologue["id"]}


def test_clusters_in_one_batch_see_each_other(
    client: TestClient, keys: dict[str, str], library: Library
) -> None:
    records = [
        {
            "substance": {"smiles": smiles},
            "detected_on": "2026-05-02",
            "country": "FR",
            "sample_type": "seizure",
        }
        for smiles in (NEW_NITAZENE, NEW_NITAZENE_HOMOLOGUE)
    ]
    body = client.post(
        "/v1/detections/batch", json={"detections": records}, headers=auth(keys["lab_a"])
    ).json()
    clusters = {r["detection"]["cluster_id"] for r in body["results"]}
    assert len(clusters) == 1
    assert None not in clusters
