"""The scheduler: APScheduler jobs that run in exactly one process (the leader).

Leader election: on PostgreSQL a session-level advisory lock held on a dedicated connection (if
the leader dies, its connection closes and the lock is released at once); on SQLite an exclusive
file lock beside the database file (SQLite is single-machine by nature). A process that is not
the leader waits on standby and takes over when the lock becomes free.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from contextlib import suppress
from pathlib import Path
from typing import IO, Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection, Engine, text

from app import jobs
from app.jobs import JobContext

logger = logging.getLogger("sentinel.scheduler")

# An arbitrary constant naming the leader lock among the database's advisory locks.
ADVISORY_LOCK_KEY = 0x53454E54  # "SENT"


class LeaderLock(Protocol):
    def try_acquire(self) -> bool: ...
    def held(self) -> bool: ...
    def release(self) -> None: ...


class PostgresLeaderLock:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        if self._connection is None:
            self._connection = self.engine.connect()
        try:
            acquired = bool(
                self._connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
                ).scalar()
            )
            self._connection.commit()
        except Exception:
            self.release()  # a broken connection: the next attempt opens a new one
            raise
        return acquired

    def held(self) -> bool:
        """The lock lives as long as our database session: if the session is gone (server
        restart, connection killed) the server has dropped the lock and another may lead."""
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
        except Exception:
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._connection is not None:
            # invalidate() ends the database session, which drops the advisory lock; close()
            # alone would return the session to the pool with the lock still held.
            with suppress(Exception):
                self._connection.invalidate()
            with suppress(Exception):
                self._connection.close()
            self._connection = None


class FileLeaderLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        handle = self.path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def held(self) -> bool:
        return self._handle is not None  # an flock lasts as long as this process holds the file

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def leader_lock_for(engine: Engine) -> LeaderLock:
    if engine.dialect.name == "postgresql":
        return PostgresLeaderLock(engine)
    database = engine.url.database
    if not database or database == ":memory:":
        raise ValueError("the scheduler needs a file database or PostgreSQL")
    return FileLeaderLock(Path(database).with_name(Path(database).name + ".scheduler.lock"))


def build_scheduler(context: JobContext) -> BackgroundScheduler:
    """The jobs, each with explicit coalescing, one instance at a time and a misfire grace."""
    settings = context.settings
    scheduler = BackgroundScheduler(timezone="UTC")
    defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 60, "args": [context]}
    scheduler.add_job(
        jobs.score_threats,
        "interval",
        minutes=settings.score_interval_minutes,
        id="score_threats",
        **defaults,
    )
    scheduler.add_job(
        jobs.deliver,
        "interval",
        seconds=settings.deliver_interval_seconds,
        id="deliver",
        **defaults,
    )
    scheduler.add_job(jobs.purge, "interval", hours=1, id="purge", **defaults)
    return scheduler


class SchedulerService:
    """Runs the scheduler while this process holds the leader lock; otherwise stands by.

    A standby tries for the lock every `standby_seconds`; the leader checks every
    `check_seconds` that it still holds it, and stops its jobs and stands by when it does not.
    """

    def __init__(
        self,
        context: JobContext,
        engine: Engine,
        *,
        standby_seconds: float = 5.0,
        check_seconds: float = 1.0,
    ) -> None:
        self.context = context
        self.lock = leader_lock_for(engine)
        self.standby_seconds = standby_seconds
        self.check_seconds = check_seconds
        self.scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self.scheduler is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scheduler-leader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.scheduler is None and self.lock.try_acquire():
                    logger.info("this process is the scheduler leader")
                    self.scheduler = build_scheduler(self.context)
                    self.scheduler.start()
                elif self.scheduler is not None and not self.lock.held():
                    logger.error("the leader lock was lost: stopping the jobs, standing by")
                    self.scheduler.shutdown(wait=False)
                    self.scheduler = None
            except Exception:
                logger.exception("leader election failed; retrying")
            self._stop.wait(
                self.check_seconds if self.scheduler is not None else self.standby_seconds
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        self.lock.release()
