"""Exactly one scheduler runs the jobs: the leader lock, standby and takeover.

In one process: two SchedulerService instances against the same database, each with its own
engine as two processes would have (SQLite: a file lock beside the database file; PostgreSQL: a
session-level advisory lock). The job functions are replaced by recorders, and an APScheduler
listener records every execution with its scheduled run time. Across processes: two
`sentinel scheduler` commands against the same database; the lock holder is read from the
operating system (/proc/locks) or from PostgreSQL (pg_locks), never from the processes themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import ref_to_obj
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import sessionmaker

from app import jobs, scheduler
from app.db import make_engine, make_sessionmaker
from app.jobs import JobContext
from app.scheduler import (
    ADVISORY_LOCK_KEY,
    FileLeaderLock,
    SchedulerService,
    build_scheduler,
    leader_lock_for,
)
from app.settings import Settings

LEADER_LOG = "this process is the scheduler leader"
JOB_IDS = {"score_threats", "deliver", "purge"}


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def fast(settings: Settings) -> Settings:
    """Scoring every second (the setting is in minutes) and delivery every second."""
    return settings.model_copy(
        update={"score_interval_minutes": 1 / 60, "deliver_interval_seconds": 1}
    )


# ---- the jobs as built -----------------------------------------------------------------------


def test_jobs_are_module_functions_with_coalescing_one_instance_and_misfire_grace() -> None:
    settings = Settings(database_url="sqlite:///unused.db")
    context = JobContext(sessionmaker(), settings)
    built = build_scheduler(context)
    try:
        built_jobs = {job.id: job for job in built.get_jobs()}
        assert set(built_jobs) == JOB_IDS
        for job_id, job in built_jobs.items():
            assert job.coalesce is True
            assert job.max_instances == 1
            assert job.misfire_grace_time is not None
            assert job.misfire_grace_time > 0
            assert job.args == (context,)
            # A module-level function, importable by its textual reference.
            assert job.func_ref == f"app.jobs:{job_id}"
            assert ref_to_obj(job.func_ref) is getattr(jobs, job_id)
            assert isinstance(job.trigger, IntervalTrigger)
        intervals = {job_id: job.trigger.interval for job_id, job in built_jobs.items()}
        assert intervals == {
            "score_threats": timedelta(minutes=settings.score_interval_minutes),
            "deliver": timedelta(seconds=settings.deliver_interval_seconds),
            "purge": timedelta(hours=1),
        }
        assert intervals["score_threats"] == timedelta(minutes=15)  # the documented default
    finally:
        if built.running:
            built.shutdown(wait=False)


def test_a_slow_job_never_overlaps_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """max_instances=1: a scoring pass longer than the interval delays the next, never doubles."""
    running = 0
    most = 0
    runs = 0
    guard = threading.Lock()

    def slow_score(context: JobContext, as_of: Any = None) -> list[Any]:
        nonlocal running, most, runs
        with guard:
            running += 1
            runs += 1
            most = max(most, running)
        time.sleep(0.7)
        with guard:
            running -= 1
        return []

    monkeypatch.setattr(jobs, "score_threats", slow_score)
    monkeypatch.setattr(jobs, "deliver", lambda context: None)
    monkeypatch.setattr(jobs, "purge", lambda context: 0)
    settings = Settings(database_url="sqlite:///unused.db").model_copy(
        update={"score_interval_minutes": 0.2 / 60}
    )
    built = build_scheduler(JobContext(sessionmaker(), settings))
    built.start()
    try:
        time.sleep(2.0)
    finally:
        built.shutdown(wait=True)
    assert runs >= 2
    assert most == 1


def test_an_in_memory_database_cannot_elect_a_leader() -> None:
    with pytest.raises(ValueError, match="file database or PostgreSQL"):
        leader_lock_for(create_engine("sqlite://"))


def test_the_sqlite_lock_is_a_file_beside_the_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    lock = leader_lock_for(engine)
    assert isinstance(lock, FileLeaderLock)
    assert lock.path == tmp_path / "a.db.scheduler.lock"
    other = FileLeaderLock(lock.path)
    try:
        assert lock.try_acquire()
        assert not other.try_acquire()
        lock.release()
        assert other.try_acquire()
    finally:
        lock.release()
        other.release()
    engine.dispose()


# ---- two services in one process -------------------------------------------------------------


@dataclass
class Runs:
    """Every job execution: by recorder (which service ran it) and by APScheduler event."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[str, str, datetime]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # id(JobContext) -> service name
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by(self, name: str, job_id: str | None = None) -> int:
        with self.lock:
            return sum(
                1 for who, job in self.calls if who == name and (job_id is None or job == job_id)
            )


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Runs:
    """Recorders in place of the three jobs, and a listener on every scheduler built."""
    record = Runs()

    def recorder(job_id: str) -> Callable[..., Any]:
        def run(context: JobContext, *args: Any) -> None:
            with record.lock:
                record.calls.append((record.names.get(id(context), "?"), job_id))

        return run

    for job_id in JOB_IDS:
        monkeypatch.setattr(jobs, job_id, recorder(job_id))

    original = scheduler.build_scheduler

    def build_with_listener(context: JobContext) -> BackgroundScheduler:
        built = original(context)
        name = record.names.get(id(context), "?")

        def listen(event: JobExecutionEvent) -> None:
            with record.lock:
                if event.exception is not None:
                    record.errors.append(f"{name} {event.job_id}: {event.exception!r}")
                record.events.append((name, event.job_id, event.scheduled_run_time))

        built.add_listener(listen, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        return built

    monkeypatch.setattr(scheduler, "build_scheduler", build_with_listener)
    return record


@pytest.fixture
def service_engines(database_url: str, engine: Engine) -> Iterator[list[Engine]]:
    """Engines of their own for the services (as two processes would have), disposed after."""
    made: list[Engine] = []
    yield made
    for each in made:
        each.dispose()


def test_two_services_elect_one_leader_that_runs_each_job_once_and_a_standby_takes_over(
    database_url: str,
    settings: Settings,
    runs: Runs,
    service_engines: list[Engine],
) -> None:
    services: dict[str, SchedulerService] = {}
    for name in ("a", "b"):
        engine = make_engine(database_url)
        service_engines.append(engine)
        context = JobContext(make_sessionmaker(engine), fast(settings))
        runs.names[id(context)] = name
        services[name] = SchedulerService(context, engine, standby_seconds=0.1)
    try:
        for service in services.values():
            service.start()
        assert wait_for(lambda: any(s.is_leader for s in services.values()), timeout=5)
        elected = time.monotonic()
        time.sleep(0.5)  # the standby has polled the lock several times by now
        leaders = [name for name, service in services.items() if service.is_leader]
        assert len(leaders) == 1, leaders
        leader = leaders[0]
        standby = "b" if leader == "a" else "a"

        # Let the jobs tick a few times: only the leader runs them, once per interval (1 s).
        assert wait_for(lambda: runs.by(leader, "score_threats") >= 2, timeout=6)
        assert wait_for(lambda: runs.by(leader, "deliver") >= 2, timeout=3)
        assert runs.by(standby) == 0
        assert not services[standby].is_leader
        with runs.lock:
            scoring_runs = sum(1 for _, job in runs.calls if job == "score_threats")
        assert scoring_runs <= time.monotonic() - elected + 1
        # Each scheduled run of each job happened exactly once.
        with runs.lock:
            occurrences = [(job, at) for _, job, at in runs.events]
        assert len(occurrences) == len(set(occurrences))
        assert runs.errors == []

        # The leader stops; the standby takes over and the jobs go on, run by it alone.
        services[leader].stop()
        stopped_at = runs.by(leader)
        assert wait_for(lambda: services[standby].is_leader, timeout=3)
        assert wait_for(lambda: runs.by(standby, "score_threats") >= 1, timeout=4)
        assert wait_for(lambda: runs.by(standby, "deliver") >= 1, timeout=3)
        assert runs.by(leader) == stopped_at
        assert not services[leader].is_leader
        with runs.lock:
            occurrences = [(job, at) for _, job, at in runs.events]
        assert len(occurrences) == len(set(occurrences))
        assert runs.errors == []
    finally:
        for service in services.values():
            service.stop()


def test_three_services_started_together_never_share_leadership(
    database_url: str,
    settings: Settings,
    runs: Runs,
    service_engines: list[Engine],
) -> None:
    """Started at the same instant, at no point do two services lead or run jobs."""
    names = ("a", "b", "c")
    services: list[SchedulerService] = []
    for name in names:
        engine = make_engine(database_url)
        service_engines.append(engine)
        context = JobContext(make_sessionmaker(engine), fast(settings))
        runs.names[id(context)] = name
        services.append(SchedulerService(context, engine, standby_seconds=0.1))
    try:
        for service in services:
            service.start()
        for _ in range(10):
            leaders = sum(service.is_leader for service in services)
            assert leaders <= 1
            time.sleep(0.1)
        assert wait_for(lambda: sum(s.is_leader for s in services) == 1, timeout=5)
        assert wait_for(lambda: len(runs.calls) >= 3, timeout=5)
        with runs.lock:
            assert len({who for who, _ in runs.calls}) == 1
    finally:
        for service in services:
            service.stop()


def test_a_leader_that_loses_its_advisory_lock_stops_its_jobs_and_the_standby_leads(
    database_url: str,
    engine: Engine,
    settings: Settings,
    runs: Runs,
    service_engines: list[Engine],
) -> None:
    """The server ends the leader's session (restart, network cut, pg_terminate_backend): the
    lock is gone, so the leader must stop its jobs before the standby starts the same ones."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's; an flock cannot be taken away")
    services: dict[str, SchedulerService] = {}
    for name in ("a", "b"):
        own = make_engine(database_url)
        service_engines.append(own)
        context = JobContext(make_sessionmaker(own), fast(settings))
        runs.names[id(context)] = name
        services[name] = SchedulerService(context, own, standby_seconds=0.1, check_seconds=0.1)
    try:
        services["a"].start()
        assert wait_for(lambda: services["a"].is_leader, timeout=5)
        services["b"].start()
        assert wait_for(lambda: runs.by("a", "deliver") >= 1, timeout=5)
        assert not services["b"].is_leader

        with engine.connect() as connection:
            (pid,) = connection.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) AND objid::bigint = :low"
                ),
                {"low": ADVISORY_LOCK_KEY & 0xFFFFFFFF},
            ).one()
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            connection.commit()

        assert wait_for(lambda: not services["a"].is_leader, timeout=3)
        assert wait_for(lambda: services["b"].is_leader, timeout=3)
        stopped_at = runs.by("a")
        assert wait_for(lambda: runs.by("b", "deliver") >= 2, timeout=5)
        assert runs.by("a") == stopped_at
        assert not services["a"].is_leader  # it stands by: the lock is b's now
        with runs.lock:
            occurrences = [(job, at) for _, job, at in runs.events]
        assert len(occurrences) == len(set(occurrences))
    finally:
        for service in services.values():
            service.stop()


# ---- two `sentinel scheduler` processes ------------------------------------------------------


def _sentinel() -> str:
    executable = Path(sys.executable).with_name("sentinel")
    assert executable.exists(), executable
    return str(executable)


def _lock_holder_pids(lock_path: Path) -> set[int]:
    """PIDs holding an flock on the file, from /proc/locks (Linux)."""
    inode = lock_path.stat().st_ino
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        if int(parts[5].rsplit(":", 1)[1]) == inode:
            holders.add(int(parts[4]))
    return holders


def _advisory_holders(engine: Engine) -> list[str]:
    """application_name of each session holding the leader's advisory lock."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid::bigint = :high AND l.objid::bigint = :low"
            ),
            {"high": ADVISORY_LOCK_KEY >> 32, "low": ADVISORY_LOCK_KEY & 0xFFFFFFFF},
        )
        return [row[0] for row in rows]


def test_two_scheduler_processes_one_leads_and_the_other_takes_over_when_it_dies(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    postgres = engine.dialect.name == "postgresql"
    lock_path = Path(str(engine.url.database) + ".scheduler.lock")
    children: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}

    def holders() -> set[str]:
        if postgres:
            return {name.removeprefix("sentinel-test-") for name in _advisory_holders(engine)}
        if not lock_path.exists():
            return set()
        pids = _lock_holder_pids(lock_path)
        return {name for name, child in children.items() if child.pid in pids} | (
            {"?"} if pids - {child.pid for child in children.values()} else set()
        )

    def log_of(name: str) -> str:
        return logs[name].read_text(errors="replace")

    try:
        for name in ("a", "b"):
            logs[name] = tmp_path / f"scheduler-{name}.log"
            env = {
                **os.environ,
                "SENTINEL_DATABASE_URL": database_url,
                "SENTINEL_LOG_LEVEL": "info",
                "PGAPPNAME": f"sentinel-test-{name}",  # libpq names the session after it
                "PYTHONUNBUFFERED": "1",
            }
            with logs[name].open("wb") as log:
                children[name] = subprocess.Popen(
                    [_sentinel(), "scheduler"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        assert wait_for(lambda: len(holders()) == 1, timeout=30, interval=0.2), log_of(
            "a"
        ) + log_of("b")
        # Give the standby a few polls (every 5 s by default) at a lock it cannot get.
        assert wait_for(lambda: "scheduler started" in log_of("a") + log_of("b"), timeout=10)
        time.sleep(1.0)
        (leader,) = holders()
        assert leader in children
        standby = "b" if leader == "a" else "a"
        assert children[standby].poll() is None  # alive, standing by
        assert LEADER_LOG in log_of(leader)
        assert LEADER_LOG not in log_of(standby)
        assert holders() == {leader}

        # The leader dies without cleaning up: the lock goes with it and the standby leads.
        children[leader].send_signal(signal.SIGKILL)
        children[leader].wait(timeout=10)
        assert wait_for(lambda: holders() == {standby}, timeout=15, interval=0.2), log_of(standby)
        assert wait_for(lambda: LEADER_LOG in log_of(standby), timeout=5)

        # A graceful stop releases the lock and exits 0.
        children[standby].send_signal(signal.SIGTERM)
        assert children[standby].wait(timeout=15) == 0
        assert wait_for(lambda: holders() == set(), timeout=5)
    finally:
        for child in children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(timeout=10)
