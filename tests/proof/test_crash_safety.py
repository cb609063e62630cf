"""Crash safety, on a SQLite file and on PostgreSQL: writers killed with SIGKILL lose nothing.

1. Detections. A writer serving the API on 127.0.0.1 is killed with SIGKILL 25 times at seeded
   random moments while four client threads post detections, each with a unique lab_reference
   and Idempotency-Key, retrying every failure with the same key until they see a 201. The
   writer is a pre-forking server (tests/proof/prefork_server.py: one import, a fresh server
   process forked after each death, as `gunicorn --preload` does), because a cold start takes
   seconds; after the 25th kill the whole server is killed and a cold `sentinel serve` takes
   over, where the retries are replayed. Then: every detection whose 201 the client saw is
   stored exactly once under the id it was told, nothing else is stored, every key's record is
   complete, audit rows match, cluster counts match their members, and the database passes
   its integrity checks.
2. Deliveries. Alerts are published with 40 pending webhook deliveries; `sentinel scheduler`
   is killed with SIGKILL mid-pass (the receiver holds each reply, so nothing is recorded) and
   then at random moments, and restarted each time. Every delivery ends delivered and the
   receiver has seen each message id at least once (at-least-once: the copies a crash forces
   carry the same id).
The time-outs after which a dead process's work is taken over (Idempotency-Key reservations,
delivery leases: 2 minutes by default) are set to 2-3 s here through their settings.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import utc_now
from app.detections import service
from app.main import create_app
from app.models import (
    Alert,
    AuditLog,
    Cluster,
    Delivery,
    Detection,
    IdempotencyRecord,
    Organisation,
)
from app.models.enums import AlertStatus, DeliveryStatus, DetectionStatus
from app.settings import Settings
from app.triage.service import publish_alert
from reference_standards import Library
from tests.proof.process_support import (
    Child,
    Children,
    MessageCounter,
    add_alert,
    add_webhook_subscribers,
    children,
    free_port,
    integrity_problems,
    is_ready,
    message_counter,
    sentinel_env,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.slow

SEED = 20260310
KILLS = 25
CLIENT_THREADS = 4
RESERVATION_SECONDS = 2  # SENTINEL_IDEMPOTENCY_RESERVATION_SECONDS in the writers
LEASE_SECONDS = 3  # SENTINEL_DELIVERY_LEASE_SECONDS in the schedulers

# Reference standards (matched) and unlisted analogues (clustered), so that a crash can land in
# either kind of write: a plain insert, or a cluster opened or joined with its member count.
STRUCTURES = [
    "CC(N)Cc1ccccc1",  # amphetamine
    "CNC(C)Cc1ccc2c(c1)OCO2",  # MDMA
    "CCN(CC)CCn1c(Cc2ccc(OC(C)C)cc2)nc2cc([N+](=O)[O-])ccc21",  # isotonitazene
    "CC(NC)Cc1ccc(F)c(Cl)c1",
    "CCCCN(CCCC)CCn1c(Cc2ccc(OCCF)cc2)nc2cc([N+](=O)[O-])ccc21",
    "CCCCCn1cc(C(=O)NC(Cc2ccccc2)C(N)=O)c2ccccc21",
    "CCCCC(NC)C(=O)c1ccc2c(c1)CCC2",
]


# ---- 1. detections ------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients saw: the id of each lab_reference's 201, and every other outcome."""

    created: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # lab_reference -> Idempotency-Key
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    troubled: set[str] = field(default_factory=set)  # lab_references that needed a retry
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, reference: str, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.troubled.add(reference)


def detection(reference: str, index: int) -> dict[str, Any]:
    return {
        "substance": {"smiles": STRUCTURES[index % len(STRUCTURES)]},
        "detected_on": (utc_now().date() - timedelta(days=index % 20)).isoformat(),
        "country": "DE",
        "sample_type": "seizure",
        "lab_reference": reference,
    }


def post_until_created(
    client: httpx.Client, lab_key: str, reference: str, tally: Tally, deadline: float
) -> None:
    """Post one detection, retrying with the same Idempotency-Key until a 201 is seen."""
    headers = {"Authorization": f"Bearer {lab_key}", "Idempotency-Key": tally.keys[reference]}
    body = tally.bodies[reference]
    while time.monotonic() < deadline:
        try:
            response = client.post("/v1/detections", json=body, headers=headers)
        except httpx.TransportError as error:  # the writer died (or was not up yet)
            tally.note(reference, type(error).__name__)
            time.sleep(0.05)
            continue
        if response.status_code == 201:
            with tally.lock:
                tally.outcomes["201"] += 1
                tally.outcomes["201 replayed"] += response.headers.get("idempotency-replayed") == (
                    "true"
                )
                tally.created[reference] = response.json()["id"]
            return
        if response.status_code == 409 and "Idempotency-Key" in response.text:
            tally.note(reference, "409 key in flight")  # held by a dead request: retry later
            time.sleep(0.2)
            continue
        with tally.lock:
            tally.unexpected.append(f"{reference}: {response.status_code} {response.text[:300]}")
        return
    with tally.lock:
        tally.unexpected.append(f"{reference}: no 201 before the deadline")


def client_loop(
    port: int, lab_key: str, tally: Tally, counter: Iterator[int], stop: threading.Event
) -> None:
    timeout = httpx.Timeout(15.0, connect=2.0)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as client:
        while not stop.is_set():
            with tally.lock:
                index = next(counter)
                reference = f"crash-{index:05d}"
                tally.keys[reference] = f"key-{index:05d}"
                tally.bodies[reference] = detection(reference, index)
            post_until_created(client, lab_key, reference, tally, time.monotonic() + 90)


class ForkingWriter:
    """The pre-forking server and the pid of its current server process."""

    def __init__(self, started: Children, database_url: str, port: int) -> None:
        self.child: Child = started.start(
            "prefork-writer",
            [sys.executable, "-m", "tests.proof.prefork_server", str(port)],
            # Chemistry inline: worker processes of a pool cannot be shared by forked servers
            # (the cold `sentinel serve` below runs them, as the default says).
            sentinel_env(
                database_url,
                idempotency_reservation_seconds=RESERVATION_SECONDS,
                chemistry_isolation="inline",
            ),
            stdout_pipe=True,
        )
        self.port = port
        self.pids: queue.Queue[int] = queue.Queue()
        threading.Thread(target=self._read_pids, daemon=True).start()

    def _read_pids(self) -> None:
        assert self.child.process.stdout is not None
        for line in self.child.process.stdout:
            self.pids.put(int(line))

    def next_server(self, timeout: float) -> int:
        """Wait for the next forked server to be up; return its pid."""
        try:
            pid = self.pids.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no server forked:\n{self.child.log()}") from None
        wait_until(lambda: is_ready(self.port), 30, f"server {pid} to serve")
        return pid


def test_writer_killed_25_times_stores_each_acknowledged_detection_exactly_once(
    database_url: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    loaded_references: Library,
    keys: dict[str, str],
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    port, cold_port = free_port(), free_port()
    tally = Tally()
    stop = threading.Event()
    counter = iter(range(1_000_000))
    with children(tmp_path) as started:
        writer = ForkingWriter(started, database_url, port)
        # The cold server that takes over at the end starts importing now, and stays idle.
        cold = started.serve(
            database_url, cold_port, idempotency_reservation_seconds=RESERVATION_SECONDS
        )
        pid = writer.next_server(timeout=120)
        clients = [
            threading.Thread(target=client_loop, args=(port, keys["lab_a"], tally, counter, stop))
            for _ in range(CLIENT_THREADS)
        ]
        for thread in clients:
            thread.start()
        try:
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.2, 1.5))
                os.kill(pid, signal.SIGKILL)
                pid = writer.next_server(timeout=30)
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=120)
        posted_during_kills = len(tally.created)
        writer.child.kill()  # a 26th crash: the whole pre-forking server, mid-traffic or not

        # A cold `sentinel serve`: every key posted again replays its first 201.
        wait_ready(cold_port, cold)
        calm = sorted(set(tally.created) - tally.troubled)
        replays = sorted(tally.troubled) + rng.sample(calm, min(100, len(calm)))
        replayed: dict[str, int] = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{cold_port}", timeout=15.0) as client:
            for reference in replays:
                response = client.post(
                    "/v1/detections",
                    json=tally.bodies[reference],
                    headers={
                        "Authorization": f"Bearer {keys['lab_a']}",
                        "Idempotency-Key": tally.keys[reference],
                    },
                )
                assert response.status_code == 201, response.text
                assert response.headers["idempotency-replayed"] == "true"
                replayed[reference] = response.json()["id"]
        cold.kill()

    print(
        f"\n{KILLS} kills, {posted_during_kills} detections acknowledged; "
        f"outcomes: {dict(tally.outcomes)}"
    )
    assert not tally.unexpected, tally.unexpected[:10]
    assert set(tally.created) == set(tally.keys), "a client gave up on a detection"
    failures = sum(n for outcome, n in tally.outcomes.items() if not outcome.startswith("201"))
    assert failures >= KILLS // 2, "the kills hardly hit a request: the test proves little"
    assert all(replayed[reference] == tally.created[reference] for reference in replayed)

    with sessions.begin() as session:
        lab_id = session.scalar(select(Organisation.id).where(Organisation.name == "Lab A"))
        stored = session.execute(
            select(Detection.lab_reference, Detection.id).where(Detection.organisation_id == lab_id)
        ).all()
        references = Counter(reference for reference, _ in stored)
        assert [ref for ref, n in references.items() if n > 1] == [], "stored twice"
        assert {reference: id_ for reference, id_ in stored} == tally.created
        assert session.scalar(select(func.count()).select_from(Detection)) == len(tally.created)

        records = session.scalars(
            select(IdempotencyRecord).where(IdempotencyRecord.organisation_id == lab_id)
        ).all()
        assert {record.key for record in records} == set(tally.keys.values())
        assert all(record.status_code == 201 for record in records), "a key left in flight"
        by_key = {record.key: record.response_body for record in records}
        for reference, detection_id in tally.created.items():
            body = by_key[tally.keys[reference]]
            assert body is not None
            assert (body["id"], body["lab_reference"]) == (detection_id, reference)

        audited = Counter(
            session.scalars(
                select(AuditLog.object_id).where(AuditLog.action == "detection.create")
            ).all()
        )
        assert audited == Counter(str(id_) for id_ in tally.created.values())

        members = dict(
            session.execute(
                select(Detection.cluster_id, func.count())
                .where(
                    Detection.cluster_id.is_not(None), Detection.status == DetectionStatus.ACTIVE
                )
                .group_by(Detection.cluster_id)
            ).all()
        )
        clusters = set(session.scalars(select(Cluster.id)))
        assert members, "no detection formed a cluster: the clustering path went untested"
        assert set(members) == clusters  # no cluster left behind by a transaction that died
    assert integrity_problems(engine) == []


def test_a_retry_taking_over_a_slow_request_leaves_one_detection(
    engine: Engine,
    settings: Settings,
    sessions: sessionmaker[Session],
    keys: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why a short takeover time is safe: a reservation is taken over by time alone, so the
    request that held it may still be alive; then only one of the two may store its work."""
    quick = settings.model_copy(update={"idempotency_reservation_seconds": 0.2})
    monkeypatch.setenv("SENTINEL_CHEMISTRY_ISOLATION", "inline")  # no worker start-up to wait for
    entered, release = threading.Event(), threading.Event()
    original = service.create

    def slow_create(*args: Any, **kwargs: Any) -> Any:
        if not entered.is_set():
            entered.set()
            assert release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(service, "create", slow_create)
    body = detection("", 0) | {"lab_reference": None}  # nothing else would stop a second row
    headers = {"Authorization": f"Bearer {keys['lab_a']}", "Idempotency-Key": "slow"}
    with TestClient(create_app(quick, engine=engine)) as client:
        outcome: dict[str, httpx.Response] = {}
        slow = threading.Thread(
            target=lambda: outcome.update(
                slow=client.post("/v1/detections", json=body, headers=headers)
            )
        )
        slow.start()
        assert entered.wait(60)  # slow on a loaded machine: a first request
        time.sleep(0.3)
        retry = client.post("/v1/detections", json=body, headers=headers)
        release.set()
        slow.join(60)
        again = client.post("/v1/detections", json=body, headers=headers)
    assert retry.status_code == 201  # took the key over and did the work
    assert outcome["slow"].status_code == 409  # its work was rolled back
    assert (again.status_code, again.json()["id"]) == (201, retry.json()["id"])
    with sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(Detection)) == 1


# ---- 2. deliveries ------------------------------------------------------------------------

SUBSCRIBERS = 5
ENDPOINTS = 2  # per subscriber
ALERTS = 4


def publish_alerts(
    sessions: sessionmaker[Session], settings: Settings, receiver: MessageCounter
) -> set[str]:
    """Subscribers with webhooks to the receiver, and published alerts; return the message ids
    of the deliveries written to the outbox."""
    with sessions.begin() as session:
        add_webhook_subscribers(session, settings, receiver, SUBSCRIBERS, ENDPOINTS)
        for number in range(1, ALERTS + 1):
            alert = add_alert(session, number)
            publish_alert(session, alert, actor="officer@example.org", note="crash proof")
    with sessions.begin() as session:
        return set(session.scalars(select(Delivery.message_id)).all())


def delivery_states(sessions: sessionmaker[Session]) -> Counter[DeliveryStatus]:
    with sessions.begin() as session:
        return Counter(session.scalars(select(Delivery.status)).all())


def test_scheduler_killed_mid_delivery_completes_every_delivery_after_restart(
    database_url: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    settings: Settings,
    loaded_references: Library,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED + 1)
    delays = random.Random(SEED + 2)
    environment = {
        "deliver_interval_seconds": 1,
        "delivery_lease_seconds": LEASE_SECONDS,
        "score_interval_minutes": 60,  # deliveries only
        "webhook_allowed_networks": "127.0.0.0/8",
        "secret_key": settings.secret_key.get_secret_value(),
    }
    with (
        message_counter(delay=lambda: delays.uniform(0.3, 0.8)) as receiver,
        children(tmp_path) as started,
    ):
        written = publish_alerts(sessions, settings, receiver)
        assert len(written) == SUBSCRIBERS * ENDPOINTS * ALERTS
        assert delivery_states(sessions) == {DeliveryStatus.PENDING: len(written)}

        # Killed while sending: the receiver has requests but has answered none of them yet.
        scheduler = started.scheduler(database_url, "scheduler", **environment)
        wait_until(lambda: receiver.received > 0, 90, "the first webhook")
        time.sleep(rng.uniform(0.0, 0.2))
        scheduler.kill()
        assert delivery_states(sessions)[DeliveryStatus.SENDING] > 0
        # Then at random moments: starting, standing by, waiting for leases, sending, recording.
        for _ in range(3):
            scheduler = started.scheduler(database_url, "scheduler", **environment)
            time.sleep(rng.uniform(1.0, 6.0))
            scheduler.kill()
        scheduler = started.scheduler(database_url, "scheduler", **environment)
        wait_until(
            lambda: delivery_states(sessions) == {DeliveryStatus.DELIVERED: len(written)},
            90,
            "every delivery to be delivered",
        )
        scheduler.kill()

    with sessions.begin() as session:
        rows = session.scalars(select(Delivery)).all()
        assert {row.message_id for row in rows} == written
        assert all(row.lease_until is None and row.attempts >= 1 for row in rows)
        statuses = set(session.scalars(select(Alert.status)).all())
        assert statuses == {AlertStatus.PUBLISHED}
    assert set(receiver.seen) == written  # each message id arrived, and nothing else did
    resent = sum(1 for count in receiver.seen.values() if count > 1)
    print(f"\n{len(written)} deliveries, {resent} sent more than once after a crash")
    assert resent > 0, "the first kill came after the pass had recorded its outcomes"
    assert integrity_problems(engine) == []
