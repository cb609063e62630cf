"""API keys: 401 for missing, malformed, unknown and revoked keys; 403 for a wrong role."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import Base, utc_now
from app.models import ApiKey
from app.security import split_api_key
from tests.conftest import auth

DETECTION = {
    "substance": {"smiles": "CC(N)Cc1ccccc1"},
    "detected_on": "2026-01-15",
    "country": "DE",
    "sample_type": "seizure",
}


def assert_problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    return body


def test_missing_key_is_401(client: TestClient) -> None:
    response = client.post("/v1/detections", json=DETECTION)
    body = assert_problem(response, 401)
    assert "missing API key" in str(body["detail"])
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_malformed_key_is_401(client: TestClient) -> None:
    for header in (
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Basic abc"},
        {"X-API-Key": "snt_short_x"},
    ):
        assert_problem(client.post("/v1/detections", json=DETECTION, headers=header), 401)


def test_unknown_key_with_a_real_prefix_is_401(client: TestClient, keys: dict[str, str]) -> None:
    forged = keys["lab_a"][:-4] + ("AAAA" if not keys["lab_a"].endswith("AAAA") else "BBBB")
    body = assert_problem(client.post("/v1/detections", json=DETECTION, headers=auth(forged)), 401)
    assert body["detail"] == "unknown API key"


def test_revoked_key_is_401(
    client: TestClient, app: Any, keys: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    """Revoked by another process (here: straight in the database), a key this process has
    just checked is refused once the key cache's time (SENTINEL_API_KEY_CACHE_SECONDS) is up."""
    now = [1000.0]
    app.state.key_cache.clock = lambda: now[0]
    assert (
        client.post("/v1/detections", json=DETECTION, headers=auth(keys["lab_a"])).status_code
        == 201
    )
    prefix = split_api_key(keys["lab_a"])
    with sessions.begin() as session:
        session.execute(update(ApiKey).where(ApiKey.prefix == prefix).values(revoked_at=utc_now()))
    now[0] += app.state.key_cache.ttl / 2
    still = client.post("/v1/detections", json=DETECTION, headers=auth(keys["lab_a"]))
    assert still.status_code == 201  # within the cache time
    now[0] += app.state.key_cache.ttl
    body = assert_problem(
        client.post("/v1/detections", json=DETECTION, headers=auth(keys["lab_a"])), 401
    )
    assert "revoked" in str(body["detail"])


def test_x_api_key_header_is_accepted(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post("/v1/detections", json=DETECTION, headers={"X-API-Key": keys["lab_a"]})
    assert response.status_code == 201


def test_wrong_role_is_403(client: TestClient, keys: dict[str, str]) -> None:
    for role in ("officer", "subscriber"):
        body = assert_problem(
            client.post("/v1/detections", json=DETECTION, headers=auth(keys[role])), 403
        )
        assert role in str(body["detail"])


def test_subscriber_cannot_read_detections(client: TestClient, keys: dict[str, str]) -> None:
    created = client.post("/v1/detections", json=DETECTION, headers=auth(keys["lab_a"])).json()
    assert_problem(
        client.get(f"/v1/detections/{created['id']}", headers=auth(keys["subscriber"])), 403
    )


def test_key_plaintext_is_stored_nowhere(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    client.post("/v1/detections", json=DETECTION, headers=auth(keys["lab_a"]))
    secrets = [key.split("_", 2)[2] for key in keys.values()]
    with engine.connect() as connection:
        dump = []
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                dump.append(" ".join(str(value) for value in row))
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(FULL)")  # type: ignore[union-attr]
        finally:
            raw.close()
    everything = "\n".join(dump)
    assert len(everything) > 0
    for secret in secrets:
        assert secret not in everything
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        assert path is not None
        stored = b"".join(
            read_outside_process(candidate)
            for candidate in (path, f"{path}-wal")
            if Path(candidate).exists()
        )
        for secret in secrets:
            assert secret.encode() not in stored


def test_authenticated_write_is_audited(
    client: TestClient, keys: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    from app.models import AuditLog

    created = client.post("/v1/detections", json=DETECTION, headers=auth(keys["lab_a"])).json()
    with sessions.begin() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.action == "detection.create")).all()
        assert [(row.object_id, row.role, row.actor_type) for row in rows] == [
            (str(created["id"]), "lab", "api_key")
        ]
        assert rows[0].actor == split_api_key(keys["lab_a"])
        assert rows[0].client_address == "testclient"


def test_rate_limit_answers_429_with_retry_after(
    settings: object, engine: Engine, keys: dict[str, str]
) -> None:
    from app.main import create_app
    from app.settings import Settings

    assert isinstance(settings, Settings)
    limited = create_app(
        settings.model_copy(update={"rate_limit_per_minute": 1, "rate_limit_burst": 2}),
        engine=engine,
    )
    with TestClient(limited) as client:
        statuses = [
            client.post("/v1/detections", json=DETECTION, headers=auth(keys["lab_a"])).status_code
            for _ in range(3)
        ]
        assert statuses == [201, 201, 429]
        response = client.post("/v1/detections", json=DETECTION, headers=auth(keys["lab_a"]))
        assert int(response.headers["retry-after"]) >= 1
        # Limits are per key: another lab is unaffected.
        assert (
            client.post("/v1/detections", json=DETECTION, headers=auth(keys["lab_b"])).status_code
            == 201
        )


def read_outside_process(path: str | Path) -> bytes:
    """A file's bytes read by another process: closing a descriptor on an SQLite database in
    this process would release every POSIX lock SQLite holds on it here (process-wide
    record locks), leaving the open connections to fail with "disk I/O error"."""
    return subprocess.run(["cat", str(path)], capture_output=True, check=True).stdout
