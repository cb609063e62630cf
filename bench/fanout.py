"""Fan-out benchmark: one published alert to 1,000 webhook endpoints through the delivery outbox.

Run: .venv/bin/python bench/fanout.py [--endpoints 1000] [--limit 200]

Setup (not timed): a temporary SQLite database (app.migrate.upgrade), 1,000 webhook endpoints
(20 subscribers x 50 channels, through the subscriber service, so each secret is generated and
stored encrypted) on one local receiver, and an alert about a nitazene. Timed:
- publish: app.scoring.service.publish writes the 1,000 outbox rows in one transaction;
- deliver: app.delivery.deliver_due in passes (claim `--limit` rows, prepare, send with the
  thread pool, record) until every row is delivered; the goal is under 10 seconds;
- baseline: the same 1,000 signed requests (same URLs, bodies and headers) sent by a bare
  sequential httpx loop over one kept-alive connection, in the same run.
The receiver is an asyncio HTTP/1.1 server with keep-alive in a separate process on
127.0.0.1 (so it does not compete for this process's GIL); it answers 204 and counts requests
and distinct webhook-ids per path, and verifies every signature at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from alerts.levels import AlertLevel
from alerts.transports.webhook import USER_AGENT, signature_header
from app.crypto import SecretBox
from app.db import make_engine, make_sessionmaker, utc_now
from app.delivery import PassResult, Transports, alert_payload, deliver_due
from app.migrate import upgrade
from app.models import Alert, Delivery, Substance, WebhookEndpoint
from app.models.enums import AlertStatus, DeliveryStatus, SubjectType
from app.scoring.service import publish
from app.settings import Settings
from app.subscriptions import service
from app.subscriptions.schemas import SubscriberCreate
from reference_standards import load_library

PER_SUBSCRIBER = 50  # the API's maximum number of channels per subscriber
GOAL_SECONDS = 10.0


# ---- receiver (separate process) -----------------------------------------------------------


def receiver_main(conn: Connection) -> None:
    """Serve until told to stop; then send back what was received (path -> [(headers, body)])."""
    received: dict[str, list[tuple[dict[str, str], bytes]]] = defaultdict(list)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received[path].append((headers, body))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            conn.send(dict(received))  # "report"
            received.clear()
        server.close()

    asyncio.run(main())


class Receiver:
    def __init__(self) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=receiver_main, args=(child,), daemon=True)
        self._process.start()
        self.port: int = self._conn.recv()

    def take(self) -> dict[str, list[tuple[dict[str, str], bytes]]]:
        """What arrived since the last call."""
        self._conn.send("report")
        received: dict[str, list[tuple[dict[str, str], bytes]]] = self._conn.recv()
        return received

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(5)


# ---- setup ---------------------------------------------------------------------------------


def setup(directory: Path, endpoints: int, port: int) -> tuple[Settings, Any, dict[str, str]]:
    """Database, subscribers and an alert; returns settings, sessions and path -> secret."""
    settings = Settings(
        database_url=f"sqlite:///{directory / 'fanout.db'}",
        webhook_allowed_networks="127.0.0.0/8",
    )
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    box = SecretBox(settings.secret_key.get_secret_value())
    record = next(r for r in load_library().records if r.name == "Isotonitazene")
    secrets: dict[str, str] = {}
    with sessions.begin() as session:
        identity = record.identity
        session.add(
            Substance(
                name=record.name,
                synonyms=list(record.synonyms),
                smiles=identity.smiles,
                inchi=identity.inchi,
                inchikey=identity.inchikey,
                formula=identity.formula,
                exact_mass=identity.exact_mass,
                category=record.category,
                chemical_group=record.chemical_group,
                effect_group=record.effect_group,
                control=record.control,
                control_year=record.control_year,
                potency_tier=record.potency_tier,
                first_reported=record.first_reported,
                source=record.source,
            )
        )
        for first in range(0, endpoints, PER_SUBSCRIBER):
            paths = [f"/hooks/{n}" for n in range(first, min(first + PER_SUBSCRIBER, endpoints))]
            body = SubscriberCreate.model_validate(
                {
                    "name": f"Subscriber {first // PER_SUBSCRIBER}",
                    "kind": "health",
                    "channels": [
                        {"type": "webhook", "url": f"http://127.0.0.1:{port}{p}"} for p in paths
                    ],
                }
            )
            subscriber, created = service.create(
                session, body, box=box, allowed_networks=settings.webhook_allowed_networks
            )
            for endpoint in subscriber.webhook_endpoints:
                secrets[endpoint.url.split(str(port), 1)[1]] = created[endpoint.id]
    return settings, sessions, secrets


def new_alert(sessions: Any) -> int:
    with sessions.begin() as session:
        substance = session.scalar(select(Substance))
        now = utc_now()
        alert = Alert(
            dedup_key=f"substance:{substance.inchikey}#1",
            subject_key=f"substance:{substance.inchikey}",
            subject_type=SubjectType.SUBSTANCE,
            substance_id=substance.id,
            level=AlertLevel.CRITICAL,
            status=AlertStatus.NEW,
            score=88.4,
            title=f"Critical: {substance.name}",
            summary=f"{substance.name} scored 88.4/100 (detected in DE, FR, NL).",
            components=[
                {"name": name, "value": 0.8, "weight": 20.0, "reason": reason}
                for name, reason in [
                    ("spread", "3 countries in 14 days"),
                    ("harm", "4 deaths, 11 intoxications"),
                    ("potency", "very high potency nitazene"),
                ]
            ],
            countries=["DE", "FR", "NL"],
            created_at=now,
            updated_at=now,
        )
        session.add(alert)
        session.flush()
        return alert.id


# ---- the two senders -----------------------------------------------------------------------


def run_outbox(sessions: Any, settings: Settings, limit: int) -> tuple[float, list[float]]:
    """deliver_due in passes until nothing is due; returns total seconds and per-pass seconds."""
    transports = Transports.from_settings(settings)
    passes: list[float] = []
    start = time.perf_counter()
    try:
        while True:
            began = time.perf_counter()
            result: PassResult = deliver_due(sessions, settings, transports=transports, limit=limit)
            if not result.claimed:
                break
            passes.append(time.perf_counter() - began)
            if result.delivered != result.claimed:
                raise SystemExit(f"a pass did not deliver everything: {result}")
    finally:
        transports.webhook.close()
    return time.perf_counter() - start, passes


def signed_requests(sessions: Any, settings: Settings) -> list[tuple[str, dict[str, str], bytes]]:
    """The same requests the outbox sends: URL, Standard Webhooks headers and JSON body."""
    box = SecretBox(settings.secret_key.get_secret_value())
    requests = []
    with sessions.begin() as session:
        alert = session.scalar(
            select(Alert).options(selectinload(Alert.substance), selectinload(Alert.cluster))
        )
        for delivery, endpoint in session.execute(
            select(Delivery, WebhookEndpoint).join(
                WebhookEndpoint, Delivery.webhook_endpoint_id == WebhookEndpoint.id
            )
        ):
            body = json.dumps(
                alert_payload(alert, delivery, settings), separators=(",", ":"), sort_keys=True
            ).encode()
            secret = box.decrypt(endpoint.secret_encrypted)
            url = endpoint.url
            requests.append((url, secret, delivery.message_id, body))
    built = []
    for url, secret, message_id, body in requests:
        timestamp = int(time.time())
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header([secret], message_id, timestamp, body),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        built.append((url, headers, body))
    return built


def run_bare_loop(requests: list[tuple[str, dict[str, str], bytes]]) -> float:
    with httpx.Client(trust_env=False) as client:
        start = time.perf_counter()
        for url, headers, body in requests:
            response = client.post(url, headers=headers, content=body)
            if response.status_code != 204:
                raise SystemExit(f"baseline request failed: {response.status_code}")
        return time.perf_counter() - start


def check_received(
    received: dict[str, list[tuple[dict[str, str], bytes]]], secrets: dict[str, str]
) -> int:
    """Every endpoint got exactly one request, correctly signed; returns the request count."""
    from standardwebhooks.webhooks import Webhook  # the independent verifier (dev dependency)

    if set(received) != set(secrets):
        raise SystemExit(f"{len(set(secrets) - set(received))} endpoints received nothing")
    for path, requests in received.items():
        if len(requests) != 1:
            raise SystemExit(f"{path} received {len(requests)} requests")
        headers, body = requests[0]
        Webhook(secrets[path]).verify(body, headers)
    return sum(len(r) for r in received.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=200, help="rows claimed per pass")
    args = parser.parse_args()

    receiver = Receiver()
    try:
        with tempfile.TemporaryDirectory() as directory:
            settings, sessions, secrets = setup(Path(directory), args.endpoints, receiver.port)
            alert_id = new_alert(sessions)

            start = time.perf_counter()
            with sessions.begin() as session:
                alert = session.get(Alert, alert_id)
                publish(session, alert, actor="bench", note="fan-out benchmark")
            publish_seconds = time.perf_counter() - start

            deliver_seconds, passes = run_outbox(sessions, settings, args.limit)
            sent = check_received(receiver.take(), secrets)
            with sessions.begin() as session:
                statuses = set(session.scalars(select(Delivery.status)))
            if statuses != {DeliveryStatus.DELIVERED}:
                raise SystemExit(f"not everything was delivered: {statuses}")

            requests = signed_requests(sessions, settings)
            bare_seconds = run_bare_loop(requests)
            check_received(receiver.take(), secrets)
    finally:
        receiver.stop()

    total = publish_seconds + deliver_seconds
    print(f"fan-out of one alert to {sent:,} webhook endpoints (SQLite, 127.0.0.1 receiver)")
    print(f"  publish (write {sent:,} outbox rows)     {publish_seconds * 1000:8.0f} ms")
    print(
        f"  deliver_due, {len(passes)} passes of <= {args.limit}      "
        f"{deliver_seconds * 1000:8.0f} ms   ({sent / deliver_seconds:,.0f} deliveries/s; "
        f"passes {', '.join(f'{p * 1000:.0f}' for p in passes)} ms)"
    )
    print(f"  bare httpx loop, same {sent:,} requests   {bare_seconds * 1000:8.0f} ms")
    print(f"  ratio deliver_due / bare loop         {deliver_seconds / bare_seconds:8.2f}x")
    verdict = "within" if total < GOAL_SECONDS else "OVER"
    print(f"  publish + deliver {total:.2f} s: {verdict} the {GOAL_SECONDS:.0f} s goal")
    if total >= GOAL_SECONDS:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
