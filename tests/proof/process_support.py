"""Real processes for the crash and multi-process proofs: servers and schedulers started on
127.0.0.1 in sessions of their own (so SIGKILL reaches them and teardown reaps them all), a
webhook receiver that counts message ids, and database integrity checks for both backends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy import Engine, ForeignKeyConstraint, UniqueConstraint, select, text
from sqlalchemy.orm import Session

from alerts.levels import AlertLevel
from app.crypto import SecretBox
from app.db import Base
from app.models import Alert, Substance
from app.models.enums import SubjectType
from app.settings import Settings
from app.subscriptions import service as subscriptions
from app.subscriptions.schemas import SubscriberCreate

REPOSITORY = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtual environment's scripts (sentinel, uvicorn)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def sentinel_env(database_url: str, **settings: object) -> dict[str, str]:
    """The environment of a child process: SENTINEL_* settings (names upper-cased), no limits
    that the tests would trip over, and one BLAS thread (children fork after numpy loads)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SENTINEL_")}
    env.update(
        {
            "PYTHONPATH": str(REPOSITORY),
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "SENTINEL_DATABASE_URL": database_url,
            "SENTINEL_RATE_LIMIT_PER_MINUTE": "10000000",
            "SENTINEL_RATE_LIMIT_BURST": "10000000",
            "SENTINEL_LOG_LEVEL": "warning",
            "SENTINEL_RUN_SCHEDULER": "false",
        }
    )
    env.update({f"SENTINEL_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Child:
    """One child process, the leader of its own process group, its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the whole group (a pre-forking server's children too) and reap the leader."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Children:
    """Every process a test starts; `kill_all` (teardown) SIGKILLs whatever is still running."""

    log_dir: Path
    started: list[Child] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], env: dict[str, str], *, stdout_pipe: bool = False
    ) -> Child:
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        log: IO[bytes] = log_path.open("wb")
        process = subprocess.Popen(
            argv,
            cwd=REPOSITORY,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            start_new_session=True,
        )
        log.close()  # the child holds its own descriptor
        child = Child(name, process, log_path)
        self.started.append(child)
        return child

    def serve(self, database_url: str, port: int, **settings: object) -> Child:
        """`sentinel serve` on 127.0.0.1:port."""
        return self.start(
            f"serve-{port}",
            [str(BIN / "sentinel"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            sentinel_env(database_url, **settings),
        )

    def scheduler(self, database_url: str, name: str, **settings: object) -> Child:
        """`sentinel scheduler`, logging at INFO (who leads, which jobs ran)."""
        env = sentinel_env(database_url, log_level="info", **settings)
        env["PGAPPNAME"] = name  # names its PostgreSQL sessions (pg_stat_activity)
        return self.start(name, [str(BIN / "sentinel"), "scheduler"], env)

    def kill_all(self) -> None:
        for child in self.started:
            if child.alive():
                child.kill()


@contextmanager
def children(log_dir: Path) -> Iterator[Children]:
    started = Children(log_dir)
    try:
        yield started
    finally:
        started.kill_all()


def is_ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(port: int, child: Child, timeout: float = 90.0) -> None:
    def ready() -> bool:
        if not child.alive():
            raise AssertionError(f"{child.name} exited {child.process.returncode}:\n{child.log()}")
        return is_ready(port)

    wait_until(ready, timeout, f"{child.name} to serve on port {port}")


# ---- webhook receiver ---------------------------------------------------------------------


@dataclass
class MessageCounter:
    """A webhook receiver on 127.0.0.1 that counts each message id (webhook-id header) and
    answers 204 after `delay()` seconds (so that sends are in flight for a while)."""

    port: int = 0
    seen: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    delay: Callable[[], float] = lambda: 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def received(self) -> int:
        with self.lock:
            return sum(self.seen.values())


@contextmanager
def message_counter(delay: Callable[[], float] = lambda: 0.0) -> Iterator[MessageCounter]:
    counter = MessageCounter(delay=delay)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            with counter.lock:
                counter.seen[self.headers.get("webhook-id", "")] += 1
                counter.paths[self.path] += 1
                pause = counter.delay()
            time.sleep(pause)
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    counter.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield counter
    finally:
        server.shutdown()
        server.server_close()


def add_webhook_subscribers(
    session: Session, settings: Settings, receiver: MessageCounter, count: int, endpoints: int
) -> None:
    """`count` subscribers (all levels from warning, all countries), each with `endpoints`
    webhooks to the receiver at /s<n>/e<m>."""
    for n in range(count):
        subscriptions.create(
            session,
            SubscriberCreate.model_validate(
                {
                    "name": f"Health {n}",
                    "kind": "health",
                    "channels": [
                        {"type": "webhook", "url": receiver.url(f"/s{n}/e{m}")}
                        for m in range(endpoints)
                    ],
                }
            ),
            box=SecretBox(settings.secret_key.get_secret_value()),
            allowed_networks="127.0.0.0/8",
        )


def add_alert(session: Session, number: int) -> Alert:
    """A new warning-level alert about the reference nitazene (the library must be loaded)."""
    substance = session.scalar(select(Substance).where(Substance.name == "Isotonitazene"))
    assert substance is not None, "the reference library is not loaded"
    alert = Alert(
        dedup_key=f"substance:{substance.inchikey}#{number}",
        subject_key=f"substance:{substance.inchikey}",
        subject_type=SubjectType.SUBSTANCE,
        substance_id=substance.id,
        level=AlertLevel.WARNING,
        score=70.0,
        title=f"Warning: {substance.name}",
        summary=f"{substance.name} scored 70/100 (detected in DE).",
        countries=["DE"],
    )
    session.add(alert)
    session.flush()
    return alert


# ---- integrity ----------------------------------------------------------------------------


def integrity_problems(engine: Engine) -> list[str]:
    """What is wrong with the database: the engine's own checks (SQLite integrity_check and
    foreign_key_check; PostgreSQL amcheck on every heap and B-tree index, and constraints left
    unvalidated), then, on both, orphan rows and duplicates under every foreign key and unique
    constraint of the model."""
    problems: list[str] = []
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            verdict = connection.exec_driver_sql("PRAGMA integrity_check").scalars().all()
            if verdict != ["ok"]:
                problems += [f"integrity_check: {line}" for line in verdict]
            for row in connection.exec_driver_sql("PRAGMA foreign_key_check").all():
                problems.append(f"foreign_key_check: {tuple(row)}")
        else:
            problems += _postgres_checks(engine)
        for table in Base.metadata.sorted_tables:
            for constraint in table.constraints:
                if isinstance(constraint, ForeignKeyConstraint):
                    child = [element.parent.name for element in constraint.elements]
                    parent = [element.column.name for element in constraint.elements]
                    target = constraint.elements[0].column.table.name
                    on = " AND ".join(f"p.{p} = c.{c}" for c, p in zip(child, parent, strict=True))
                    present = " AND ".join(f"c.{c} IS NOT NULL" for c in child)
                    orphans = connection.execute(
                        text(
                            f"SELECT count(*) FROM {table.name} c LEFT JOIN {target} p ON {on} "
                            f"WHERE {present} AND p.{parent[0]} IS NULL"
                        )
                    ).scalar_one()
                    if orphans:
                        problems.append(f"{orphans} {table.name} rows point to no {target} row")
                elif isinstance(constraint, UniqueConstraint):
                    columns = [column.name for column in constraint.columns]
                    listed = ", ".join(columns)
                    present = " AND ".join(f"{c} IS NOT NULL" for c in columns)
                    duplicates = connection.execute(
                        text(
                            f"SELECT count(*) FROM (SELECT {listed} FROM {table.name} "
                            f"WHERE {present} GROUP BY {listed} HAVING count(*) > 1) d"
                        )
                    ).scalar_one()
                    if duplicates:
                        problems.append(f"{duplicates} duplicated ({listed}) in {table.name}")
    return problems


def _postgres_checks(engine: Engine) -> list[str]:
    problems: list[str] = []
    with engine.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS amcheck"))
        connection.commit()
        tables = connection.execute(
            text(
                "SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
            )
        ).all()
        for oid, name in tables:
            for row in connection.execute(
                text("SELECT blkno, offnum, msg FROM verify_heapam(:oid)"), {"oid": oid}
            ):
                problems.append(f"verify_heapam {name}: {tuple(row)}")
        indexes = connection.execute(
            text(
                "SELECT c.oid, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND am.amname = 'btree'"
            )
        ).all()
        for oid, _name in indexes:
            # heapallindexed: every heap tuple must be found in the index (raises if not).
            connection.execute(text("SELECT bt_index_check(:oid, true)"), {"oid": oid})
        for name, table in connection.execute(
            text(
                "SELECT conname, conrelid::regclass::text FROM pg_constraint c JOIN pg_namespace "
                "n ON n.oid = c.connamespace WHERE n.nspname = 'public' AND NOT c.convalidated"
            )
        ):
            problems.append(f"constraint {name} on {table} is not validated")
        connection.rollback()
    return problems
