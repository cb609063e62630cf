"""Secrets never appear in plaintext after they are handed over: not in the logs (every logger at
DEBUG, SQL statements included), not in any later response, not in the database (every row of
every table, and on SQLite the raw database and WAL files).

The secrets: API keys (from the CLI and the fixtures), webhook signing secrets (shown once by
POST /v1/subscribers and by rotate-secret, then used to sign a real delivery), a console
password (given to `sentinel users create` on stdin, then used to sign in) and the console
session token (a cookie; only its hash is stored).
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli import cli
from app.db import Base
from app.jobs import JobContext, deliver
from app.settings import Settings
from reference_standards import Library
from tests.app.test_auth import read_outside_process
from tests.conftest import auth
from tests.proof.support import World, loopback_webhooks, post_detection, seed


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records the webhooks it is sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/sentinel"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Webhooks to loopback; mail to a closed loopback port (those deliveries just fail)."""
    return loopback_webhooks(settings).model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": closed_port(), "smtp_security": "none"}
    )


class Seen:
    """Everything the flow shows after the secrets were handed over."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.texts: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self.client.request(method, url, **kwargs)
        self.texts.append(f"{method} {url} -> {response.status_code}\n{response.headers}\n")
        self.texts.append(response.text)
        return response


def forms(secret: str) -> list[str]:
    """The secret and the random part a storage format might keep without its prefix."""
    found = [secret]
    if secret.startswith("whsec_"):
        found.append(secret.removeprefix("whsec_"))
        found.append(base64.b64decode(secret.removeprefix("whsec_")).hex())
    if secret.startswith("snt_"):
        # The 43-character random part after "snt_<prefix>_" (it may itself contain "_").
        found.append(secret.split("_", 2)[2])
    return found


def leaks(secrets_: dict[str, str], text: str) -> list[str]:
    return [name for name, secret in secrets_.items() if any(f in text for f in forms(secret))]


def database_text(engine: Engine) -> str:
    """Every row of every table, as text."""
    lines = []
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                lines.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(lines)


def sqlite_files(database_url: str) -> list[Path]:
    path = Path(make_url(database_url).database or "")
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def debug_everything(caplog: pytest.LogCaptureFixture) -> None:
    """DEBUG on the root and on every logger that set a level of its own: SQLAlchemy's
    ("sqlalchemy" defaults to WARNING) then logs each statement with its parameters."""
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level > logging.DEBUG:
            caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")


def console_sign_in(seen: Seen, email: str, password: str) -> Any:
    page = seen.request("GET", "/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None, "no CSRF token on the login page"
    return seen.request(
        "POST",
        "/console/login",
        data={"email": email, "password": password, "csrf_token": token[1], "next": ""},
    )


def test_secrets_never_appear_in_logs_responses_or_the_database(
    client: TestClient,
    sessions: sessionmaker[Session],
    engine: Engine,
    database_url: str,
    settings: Settings,
    keys: dict[str, str],
    loaded_references: Library,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    debug_everything(caplog)
    monkeypatch.setenv("SENTINEL_DATABASE_URL", database_url)
    runner = CliRunner()
    shown_once: dict[str, str] = {f"fixture key {name}": key for name, key in keys.items()}

    # API key from the CLI (printed once on stdout) and a console admin with a password on stdin.
    assert runner.invoke(cli, ["orgs", "create", "Lab C", "--kind", "lab"]).exit_code == 0
    created = runner.invoke(cli, ["keys", "create", "--org", "Lab C", "--role", "lab"])
    assert created.exit_code == 0, created.output
    cli_key = created.stdout.strip().splitlines()[0]
    assert cli_key.startswith("snt_")
    shown_once["CLI key"] = cli_key
    password = "correct horse " + secrets.token_urlsafe(12)
    email = "admin@agency.example"
    made = runner.invoke(cli, ["users", "create", email, "--role", "admin"], input=password + "\n")
    assert made.exit_code == 0, made.output
    assert password not in made.output
    secret_values = dict(shown_once) | {"console password": password}

    # Webhook secrets: shown once at creation and at rotation, then used to sign a delivery.
    subscriber = client.post(
        "/v1/subscribers",
        json={
            "name": "Drug checking service",
            "kind": "health",
            "filters": {"min_level": "info"},
            "channels": [{"type": "webhook", "url": receiver.url}],
        },
        headers=auth(keys["admin"]),
    )
    assert subscriber.status_code == 201, subscriber.text
    channel = subscriber.json()["channels"][0]
    assert channel["secret"].startswith("whsec_")
    secret_values["webhook secret"] = channel["secret"]
    rotated = client.post(
        f"/v1/webhooks/{channel['id']}/rotate-secret", headers=auth(keys["admin"])
    )
    assert rotated.status_code == 200, rotated.text
    secret_values["rotated webhook secret"] = rotated.json()["secret"]

    # The secrets in use: detections, a published alert, a delivery pass, console sign-ins.
    seen = Seen(client)
    world: World = seed(client, sessions, keys)
    post_detection(client, cli_key, "CC(N)Cc1ccccc1", country="AT")
    assert seen.request("GET", "/v1/detections", headers={"X-API-Key": cli_key}).is_success
    wrong = cli_key[:-3] + ("abc" if not cli_key.endswith("abc") else "xyz")
    assert seen.request("GET", "/v1/detections", headers=auth(wrong)).status_code == 401
    deliver(JobContext(sessions, settings))
    assert receiver.requests, "the delivery pass sent no webhook"
    signed = receiver.requests[0][0]
    assert any(name.lower() == "webhook-signature" for name in signed)

    failed = console_sign_in(seen, email, password[::-1])
    assert "console_session" not in failed.headers.get("set-cookie", "")
    signed_in = console_sign_in(seen, email, password)
    assert signed_in.status_code == 200, signed_in.text
    cookie = next((value for name, value in client.cookies.items() if "session" in name), None)
    assert cookie is not None, "signing in set no session cookie"
    stored_only_hashed = {"console session token": cookie}

    # Everything a key or the console shows afterwards.
    admin = auth(keys["admin"])
    for url in (
        "/v1/subscribers",
        f"/v1/subscribers/{subscriber.json()['id']}",
        f"/v1/subscribers/{world.subscriber_id}",
        "/v1/deliveries",
        "/v1/alerts",
        f"/v1/alerts/{world.alert_id}",
        f"/v1/alerts/{world.alert_id}/cap",
        "/v1/feeds/cap",
        "/v1/detections",
    ):
        assert seen.request("GET", url, headers=admin).status_code == 200, url
    seen.request("POST", f"/v1/deliveries/{world.delivery_id}/replay", headers=admin)
    for page in (
        "/console/admin/subscribers",
        "/console/admin/labs",
        "/console/admin/users",
        "/console/admin/deliveries",
        "/console/alerts",
    ):
        assert seen.request("GET", page).status_code == 200, page

    logged = caplog.text + "\n".join(str(record.__dict__) for record in caplog.records)
    assert "SELECT" in logged  # the SQL statements were logged, so their parameters were seen
    everything_secret = secret_values | stored_only_hashed
    assert leaks(everything_secret, logged) == []
    assert leaks(secret_values, "\n".join(seen.texts)) == []
    assert leaks(everything_secret, database_text(engine)) == []
    if database_url.startswith("sqlite"):
        files = sqlite_files(database_url)
        assert files, "no SQLite database file found"
        raw = b"".join(read_outside_process(path) for path in files).decode("latin-1")
        assert leaks(everything_secret, raw) == []
