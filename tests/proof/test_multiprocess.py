"""The production deployment on PostgreSQL: two API processes and two schedulers, one database.

Four real processes on 127.0.0.1 (`sentinel serve` twice, `sentinel scheduler` twice) share a
fresh PostgreSQL database for this module. The tests show that posts spread over both APIs
are all stored once (even one Idempotency-Key sent to both at the same moment), that an alert
published from both APIs at once is published once, that exactly one scheduler leads while
the other stands by, that each job runs once per interval (read from the leader's log:
APScheduler logs every run with its scheduled time), that every delivery is sent exactly once
without crashes, and that when the leader is killed the standby takes over and carries on.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import utc_now
from app.models import Delivery, Detection, Organisation, ThreatScore
from app.models.enums import DeliveryStatus
from app.scheduler import ADVISORY_LOCK_KEY
from app.settings import Settings
from tests.proof.process_support import (
    Child,
    MessageCounter,
    add_alert,
    add_webhook_subscribers,
    children,
    free_port,
    integrity_problems,
    message_counter,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.slow

DELIVER_SECONDS = 1.0
SCORE_MINUTES = 0.05  # every 3 s
STANDBY_SECONDS = 5.0  # SchedulerService's default retry of a standby
INTERVALS = {"deliver": DELIVER_SECONDS, "score_threats": SCORE_MINUTES * 60}
RUN = re.compile(r'Running job "(\w+) \(trigger: .*\)" \(scheduled at ([^)]+)\)')
LOST = "the leader lock was lost"


@dataclass
class Deployment:
    apis: list[tuple[Child, int]]
    schedulers: list[Child]
    receiver: MessageCounter
    engine: Engine
    started_at: datetime

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.apis[n % len(self.apis)][1]}"

    def leaders(self) -> list[Child]:
        """The schedulers holding the leader lock, as PostgreSQL sees it (pg_locks, by the
        application_name each scheduler's sessions carry), not as they say themselves."""
        with self.engine.connect() as connection:
            names = connection.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.classid = 0 AND l.objid = :key AND l.database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"key": ADVISORY_LOCK_KEY},
            ).scalars()
            return [child for name in names for child in self.schedulers if child.name == name]

    def lose_leader_connection(self) -> None:
        """Terminate the leader's lock session, as a database restart or a dropped
        connection would."""
        with self.engine.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE "
                    "l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :key "
                    "AND l.database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                ),
                {"key": ADVISORY_LOCK_KEY},
            )


@pytest.fixture(scope="module")
def deployment(
    database_url: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    if not database_url.startswith("postgresql"):
        pytest.skip(
            "several API processes and schedulers on one database is the PostgreSQL deployment; "
            "SQLite serves one machine (its file-lock leader election is in tests/app)"
        )
    request.getfixturevalue("loaded_references")  # migrated, with the reference library
    engine: Engine = request.getfixturevalue("engine")
    secret = Settings().secret_key.get_secret_value()
    with (
        message_counter() as receiver,
        children(tmp_path_factory.mktemp("deployment")) as started,
    ):
        apis = []
        for _ in range(2):
            port = free_port()
            apis.append((started.serve(database_url, port, secret_key=secret), port))
        schedulers = [
            started.scheduler(
                database_url,
                name,
                deliver_interval_seconds=int(DELIVER_SECONDS),
                score_interval_minutes=SCORE_MINUTES,
                webhook_allowed_networks="127.0.0.0/8",
                secret_key=secret,
            )
            for name in ("scheduler-a", "scheduler-b")
        ]
        for child, port in apis:
            wait_ready(port, child)
        deployment = Deployment(apis, schedulers, receiver, engine, utc_now())
        wait_until(deployment.leaders, 60, "a scheduler leader")
        yield deployment


def lab_headers(key: str, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def detection(reference: str) -> dict[str, Any]:
    return {
        "substance": {"smiles": "CNC(C)Cc1ccc2c(c1)OCO2"},
        "detected_on": utc_now().date().isoformat(),
        "country": "DE",
        "sample_type": "seizure",
        "lab_reference": reference,
    }


def test_posts_spread_over_two_api_processes_are_all_stored_once(
    deployment: Deployment, keys: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    created: dict[str, int] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def post(thread: int) -> None:
        clients = [httpx.Client(base_url=deployment.url(n), timeout=30) for n in range(2)]
        for n in range(40):
            reference = f"spread-{thread}-{n}"
            response = clients[n % 2].post(
                "/v1/detections",
                json=detection(reference),
                headers=lab_headers(keys["lab_a"], f"k-{reference}"),
            )
            with lock:
                if response.status_code == 201:
                    created[reference] = response.json()["id"]
                else:
                    failures.append(f"{response.status_code} {response.text[:200]}")
        for client in clients:
            client.close()

    def same_key_on_both(reference: str) -> list[tuple[int, int, bool]]:
        """One request sent to both APIs at the same moment; each side retries a 409."""
        barrier = threading.Barrier(2)
        seen: list[tuple[int, int, bool]] = []

        def send(n: int) -> None:
            barrier.wait()
            with httpx.Client(base_url=deployment.url(n), timeout=30) as client:
                responses: list[httpx.Response] = []
                while len(responses) < 100:
                    response = client.post(
                        "/v1/detections",
                        json=detection(reference),
                        headers=lab_headers(keys["lab_a"], f"k-{reference}"),
                    )
                    responses.append(response)
                    if response.status_code != 409:
                        break
                    time.sleep(0.05)
                first = responses[0].status_code
                replayed = response.headers.get("idempotency-replayed") == "true"
                with lock:
                    seen.append((first, response.json().get("id"), replayed))

        threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return seen

    threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(created) == 160

    raced = {f"race-{n}": same_key_on_both(f"race-{n}") for n in range(15)}
    for reference, seen in raced.items():
        (first_a, id_a, replayed_a), (first_b, id_b, replayed_b) = seen
        assert id_a == id_b, seen  # both clients end up told the same detection
        assert sorted([first_a, first_b]) in ([201, 201], [201, 409]), seen
        assert [replayed_a, replayed_b].count(False) == 1, seen  # one did the work
        created[reference] = id_a

    def one_reference_two_keys(reference: str) -> list[tuple[int, Any]]:
        """Two different requests for one lab_reference, one to each API at the same moment:
        one is stored, the other is a conflict (409), not a server error."""
        barrier = threading.Barrier(2)
        answers: list[tuple[int, Any]] = []

        def send(n: int) -> None:
            barrier.wait()
            response = httpx.post(
                f"{deployment.url(n)}/v1/detections",
                json=detection(reference),
                headers=lab_headers(keys["lab_a"], f"k-{reference}-{n}"),
                timeout=30,
            )
            with lock:
                answers.append((response.status_code, response.json()))

        threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sorted(answers, key=lambda answer: answer[0])

    for n in range(15):
        reference = f"twin-{n}"
        (status_a, body_a), (status_b, body_b) = one_reference_two_keys(reference)
        assert (status_a, status_b) == (201, 409), (body_a, body_b)
        created[reference] = body_a["id"]

    with sessions.begin() as session:
        lab_id = session.scalar(select(Organisation.id).where(Organisation.name == "Lab A"))
        stored = session.execute(
            select(Detection.lab_reference, Detection.id).where(Detection.organisation_id == lab_id)
        ).all()
    assert Counter(reference for reference, _ in stored).most_common(1)[0][1] == 1
    assert dict(stored) == created


def publish_from_both_apis(deployment: Deployment, officer: str, alert_id: int) -> list[int]:
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def publish(n: int) -> None:
        barrier.wait()
        response = httpx.post(
            f"{deployment.url(n)}/v1/alerts/{alert_id}/publish",
            json={"note": "from two consoles"},
            headers={"Authorization": f"Bearer {officer}"},
            timeout=30,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def delivered_exactly_once(deployment: Deployment, sessions: sessionmaker[Session]) -> set[str]:
    """Wait until every delivery is delivered and two more passes have run; then every
    message id has reached the receiver exactly once, and nothing else has."""

    def states() -> Counter[DeliveryStatus]:
        with sessions.begin() as session:
            return Counter(session.scalars(select(Delivery.status)).all())

    wait_until(lambda: set(states()) == {DeliveryStatus.DELIVERED}, 60, "every delivery")
    time.sleep(2 * DELIVER_SECONDS + 0.5)
    with sessions.begin() as session:
        written = set(session.scalars(select(Delivery.message_id)).all())
    assert set(states()) == {DeliveryStatus.DELIVERED}
    assert deployment.receiver.seen == Counter(dict.fromkeys(written, 1))
    return written


def test_an_alert_published_from_both_apis_at_once_is_sent_once(
    deployment: Deployment,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    deployment.receiver.seen.clear()
    with sessions.begin() as session:
        add_webhook_subscribers(session, settings, deployment.receiver, count=3, endpoints=1)
        alert_ids = [add_alert(session, number).id for number in range(1, 7)]
    for alert_id in alert_ids:
        assert publish_from_both_apis(deployment, keys["officer"], alert_id) == [200, 409]
    written = delivered_exactly_once(deployment, sessions)
    assert len(written) == len(alert_ids) * 3


def runs(log: str) -> dict[str, list[datetime]]:
    found: dict[str, list[datetime]] = {job: [] for job in INTERVALS}
    for job, scheduled_at in RUN.findall(log):
        if job in found:
            found[job].append(datetime.fromisoformat(scheduled_at))
    return found


def assert_once_per_interval(times: list[datetime], interval: float, within: float) -> None:
    """Interval triggers fire at start + k * interval: each k at most once, and few missing."""
    assert times, "the job never ran"
    slots = [(time - times[0]).total_seconds() / interval for time in times]
    assert all(abs(slot - round(slot)) < 0.01 for slot in slots), slots
    numbers = [round(slot) for slot in slots]
    assert len(numbers) == len(set(numbers)), f"a run repeated: {numbers}"
    assert len(numbers) >= 0.8 * within / interval - 2, f"runs missing: {numbers}"


def test_one_scheduler_leads_each_job_runs_once_per_interval_and_a_standby_takes_over(
    deployment: Deployment,
    engine: Engine,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    # Let the leader score something, so that the scoring job writes as well as runs.
    with httpx.Client(base_url=deployment.url(0), timeout=30) as client:
        for n in range(5):
            response = client.post(
                "/v1/detections", json=detection(f"scored-{n}"), headers=lab_headers(keys["lab_a"])
            )
            assert response.status_code == 201
    time.sleep(2 * INTERVALS["score_threats"] + 1)

    (first,) = deployment.leaders()
    (second,) = [child for child in deployment.schedulers if child is not first]
    assert all(runs(second.log())[job] == [] for job in INTERVALS), "the standby ran a job"
    elapsed = (utc_now() - deployment.started_at).total_seconds()
    for job, interval in INTERVALS.items():
        assert_once_per_interval(runs(first.log())[job], interval, within=elapsed - 15)
    with sessions.begin() as session:
        latest = session.scalar(select(func.max(ThreatScore.scored_at)))
    assert latest is not None
    assert utc_now() - latest < timedelta(seconds=10)

    # 1. The leader's database session is lost (its process lives on): the standby takes the
    # lock, and the old leader notices within a second, stops its jobs and stands by.
    lost_at = utc_now()
    deployment.lose_leader_connection()
    wait_until(lambda: deployment.leaders() == [second], STANDBY_SECONDS + 10, "a new leader")
    time.sleep(2 * INTERVALS["score_threats"] + 1)
    assert deployment.leaders() == [second]
    for job, interval in INTERVALS.items():
        late = [at for at in runs(first.log())[job] if at > lost_at + timedelta(seconds=2)]
        assert late == [], f"the old leader still ran {job} after losing the lock"
        taken_over = runs(second.log())[job]
        assert min(taken_over) > lost_at
        within = (utc_now() - min(taken_over)).total_seconds()
        assert_once_per_interval(taken_over, interval, within=within)
    assert LOST in first.log()

    # 2. The new leader is killed: the first one, standing by, leads again and carries on.
    killed_at = utc_now()
    second.kill()
    wait_until(lambda: deployment.leaders() == [first], STANDBY_SECONDS + 10, "a leader again")
    resumed = time.monotonic()
    deployment.receiver.seen.clear()
    with sessions.begin() as session:
        add_webhook_subscribers(session, settings, deployment.receiver, count=2, endpoints=1)
        alert_ids = [add_alert(session, number).id for number in (11, 12)]
    for n, alert_id in enumerate(alert_ids):
        response = httpx.post(
            f"{deployment.url(n)}/v1/alerts/{alert_id}/publish",
            json={},
            headers={"Authorization": f"Bearer {keys['officer']}"},
            timeout=30,
        )
        assert response.status_code == 200
    assert len(delivered_exactly_once(deployment, sessions)) == 4
    time.sleep(max(0.0, 2 * INTERVALS["score_threats"] + 1 - (time.monotonic() - resumed)))
    for job, interval in INTERVALS.items():
        assert max(runs(second.log())[job]) < killed_at
        again = [at for at in runs(first.log())[job] if at > killed_at]
        within = (utc_now() - min(again)).total_seconds()
        assert_once_per_interval(again, interval, within=within)
    assert integrity_problems(engine) == []
