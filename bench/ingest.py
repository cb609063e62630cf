"""Ingest benchmark: detections per second through the HTTP API, with full enrichment.

Run: .venv/bin/python bench/ingest.py [--detections 20000] [--single 2000] [--structures 2000]
     [--clients 1] [--batch-clients 1] [--postgres URL | --no-postgres] [--profile]

Against a running server: `sentinel serve` (uvicorn) in a subprocess on 127.0.0.1, with the
default settings except the rate limit (raised out of the way), on a fresh SQLite file and, when
reachable, a fresh PostgreSQL database. Each path starts from an empty detection table with the
reference library loaded, so both pay for first sightings (new clusters) alike.

Data (deterministic): detections over `--structures` distinct structures (a quarter reference
standards from the library, the rest NPS analogues enumerated by bench/nps_analogues.py, which
are mostly not in the library and so open clusters), Zipf-like popularity, with 10% of the
detections reported by a name that no reference knows (stored as unidentified); dates over two
years, 30 countries, mixed sample types and contexts.

Measured, per backend, in the same run:
- single POSTs to /v1/detections, `--clients` concurrent keep-alive clients, twice (one request
  each is slow to run at full scale): the first `--single` detections into an empty database (a
  cold start: nearly half of them are first sightings of a structure, each analysed by RDKit),
  and the last `--single` after the rest of the mix went in by batches to the same server, so
  that first sightings are as rare as in the mix as a whole (the target is judged on this one);
- batches of 1,000 to /v1/detections/batch, `--batch-clients` concurrent clients, on all
  `--detections`;
- a bare SQLAlchemy Core executemany INSERT of the very rows the batch run stored (read back,
  deleted, inserted again into the same table with its indexes and constraints).
The issue's targets (SQLite): >= 1,000/s through batches and >= 200/s through single POSTs, on
50,000 detections over 2,000 structures; the default here is 20,000 (pass --detections 50000).
--profile also profiles the routes' service calls in-process (no HTTP) with cProfile: one batch,
and 300 records one transaction each, with the structures already in the Enricher's cache (the
chemistry of a new structure is measured by bench/analyse.py).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nps_analogues import analogues

from app.db import make_engine, make_sessionmaker
from app.deps import Principal
from app.detections import service
from app.enrichment import Enricher
from app.migrate import upgrade
from app.models import ApiKey, Detection, Organisation
from app.models.enums import ApiRole, OrganisationKind
from app.security import generate_api_key
from app.substances.loader import load_library_into
from reference_standards import Library, load_library

COUNTRIES = [
    "AT",
    "BE",
    "BG",
    "CY",
    "CZ",
    "DE",
    "DK",
    "EE",
    "ES",
    "FI",
    "FR",
    "GR",
    "HR",
    "HU",
    "IE",
    "IT",
    "LT",
    "LU",
    "LV",
    "MT",
    "NL",
    "NO",
    "PL",
    "PT",
    "RO",
    "SE",
    "SI",
    "SK",
    "GB",
    "US",
]
SAMPLE_TYPES = ["seizure"] * 7 + ["test_purchase", "drug_checking", "biological"]
CONTEXTS = [None] * 6 + ["seizure", "seizure", "intoxication", "death"]
BATCH = 1_000
SINGLES = 300  # records profiled one transaction each (--profile)
DEFAULT_POSTGRES = os.environ.get(
    "SENTINEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def dataset(library: Library, detections: int, structures: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    references = sorted(
        {record.smiles_as_written for record in library.records if record.smiles_as_written}
    )
    known = rng.sample(references, min(len(references), structures // 4))
    pool = known + list(analogues(structures - len(known), seed=seed))
    rng.shuffle(pool)
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(pool))]
    unknown_names = [f"street sample {rng.randrange(10**6):06d}" for _ in range(200)]
    today = date.today()
    bodies = []
    for _ in range(detections):
        substance = (
            {"name": rng.choice(unknown_names)}
            if rng.random() < 0.10
            else {"smiles": rng.choices(pool, weights)[0]}
        )
        body: dict[str, Any] = {
            "substance": substance,
            "detected_on": (today - timedelta(days=rng.randrange(730))).isoformat(),
            "country": rng.choice(COUNTRIES),
            "sample_type": rng.choice(SAMPLE_TYPES),
            "technique": rng.choice(["GC-MS", "LC-HRMS", "LC-MS/MS"]),
        }
        context = rng.choice(CONTEXTS)
        if context:
            body["context"] = context
        bodies.append(body)
    return bodies


# ---- databases and the server ----------------------------------------------------------------


@contextlib.contextmanager
def database(backend: str, postgres: str | None) -> Iterator[str]:
    """A fresh, empty database URL for one run of one path."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="sentinel-ingest-") as directory:
            yield f"sqlite:///{directory}/ingest.db"
        return
    assert postgres is not None
    plain = postgres.replace("postgresql+psycopg://", "postgresql://")
    name = f"sentinel_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(plain).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(url: str, library: Library) -> tuple[Engine, str, int]:
    """Migrate, load the reference library, create a lab and its key."""
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        load_library_into(session, library)
        lab = Organisation(name="Bench Lab", kind=OrganisationKind.LAB, country="DE")
        session.add(lab)
        session.flush()
        new = generate_api_key()
        session.add(
            ApiKey(
                prefix=new.prefix, key_hash=new.key_hash, role=ApiRole.LAB, organisation_id=lab.id
            )
        )
        return engine, new.plaintext, lab.id


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live descendants (the
    chemistry workers), from /proc; 0.0 where /proc is not available."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else []:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    tree, total = {pid}, 0.0
    changed = True
    while changed:
        changed = False
        for child, (parent, _) in stats.items():
            if parent in tree and child not in tree:
                tree.add(child)
                changed = True
    for member in tree:
        total += stats.get(member, (0, 0.0))[1]
    return total


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def server(url: str, log: Path) -> Iterator[tuple[str, int]]:
    """`sentinel serve` on 127.0.0.1 in a subprocess; yields its base URL and pid; always
    stops it."""
    port = free_port()
    env = {
        **os.environ,
        "SENTINEL_DATABASE_URL": url,
        "SENTINEL_RATE_LIMIT_PER_MINUTE": "100000000",
        "SENTINEL_RATE_LIMIT_BURST": "100000000",
        "SENTINEL_LOG_LEVEL": "warning",
    }
    sentinel = Path(sys.executable).with_name("sentinel")
    with log.open("ab") as output:
        process = subprocess.Popen(
            [str(sentinel), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}); see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not become ready; see {log}")
            time.sleep(0.3)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)


def warm_up(base: str, key: str) -> None:
    """Build the reference catalogue and start the chemistry workers before timing."""
    response = httpx.post(
        f"{base}/v1/analyse",
        json={"smiles": "CC(N)Cc1ccccc1"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    response.raise_for_status()


# ---- the paths -------------------------------------------------------------------------------


def run_concurrently(
    jobs: list[Any], clients: int, send: Callable[[httpx.Client, Any], int]
) -> tuple[float, int]:
    """Send the jobs from `clients` threads (one keep-alive client each); seconds and count."""
    queue = list(reversed(jobs))
    guard = threading.Lock()
    stored = 0
    failures: list[str] = []

    def worker() -> None:
        nonlocal stored
        with httpx.Client(timeout=300) as client:
            while True:
                with guard:
                    if not queue or failures:
                        return
                    job = queue.pop()
                try:
                    count = send(client, job)
                except Exception as error:  # report, stop the others
                    with guard:
                        failures.append(repr(error))
                    return
                with guard:
                    stored += count

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if failures:
        raise RuntimeError(failures[0])
    return seconds, stored


def single_posts(base: str, key: str, bodies: list[dict[str, Any]], clients: int) -> float:
    headers = {"Authorization": f"Bearer {key}"}

    def send(client: httpx.Client, body: dict[str, Any]) -> int:
        response = client.post(f"{base}/v1/detections", json=body, headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        return 1

    seconds, stored = run_concurrently(bodies, clients, send)
    assert stored == len(bodies)
    return seconds


def batches(base: str, key: str, bodies: list[dict[str, Any]], clients: int) -> float:
    headers = {"Authorization": f"Bearer {key}"}
    chunks = [bodies[start : start + BATCH] for start in range(0, len(bodies), BATCH)]

    def send(client: httpx.Client, chunk: list[dict[str, Any]]) -> int:
        response = client.post(
            f"{base}/v1/detections/batch", json={"detections": chunk}, headers=headers
        )
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        result = response.json()
        if result["rejected"]:
            raise RuntimeError(f"{result['rejected']} records rejected: {result['results'][:2]}")
        return int(result["accepted"])

    seconds, stored = run_concurrently(chunks, clients, send)
    assert stored == len(bodies)
    return seconds


def bare_insert(engine: Engine) -> tuple[float, int]:
    """Read back the stored detections, delete them, and time inserting the same rows again
    with one Core executemany (same table, indexes, constraints; no enrichment, no HTTP)."""
    table = Detection.__table__
    columns = [column for column in table.columns if column.name != "id"]
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(select(*columns))]
    with engine.begin() as connection:
        connection.execute(delete(Detection))
    start = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(insert(Detection), rows)
    seconds = time.perf_counter() - start
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(table)) == len(rows)
    return seconds, len(rows)


def profile_server_side(url: str, lab_id: int, bodies: list[dict[str, Any]]) -> str:
    """cProfile, in this process, of what the two routes do besides HTTP: one batch through
    service.create_many in one transaction, then `SINGLES` records each in a transaction of its
    own (create, audit row, view, commit) as single POSTs are."""
    import json

    from app import audit
    from app.detections.schemas import BatchResult, DetectionBatch, DetectionCreate

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    enricher = Enricher()
    principal = Principal(
        actor="bench", actor_type="api_key", role=ApiRole.LAB, organisation_id=lab_id
    )
    # Warm, as a running server is: catalogue built, chemistry workers started, and the
    # Enricher's cache holding these structures (rolled back, so the detections and clusters
    # are created again below). What is left is the per-record cost beyond the chemistry.
    with sessions.begin() as session:
        service.create_many(session, principal, bodies[: BATCH + SINGLES], enricher)
        session.rollback()
    out = io.StringIO()

    # Where one batch's time goes, unprofiled (wall clock, this process, rolled back).
    raw = json.dumps({"detections": bodies[:BATCH]})
    with sessions.begin() as session:
        marks = [time.perf_counter()]
        parsed = DetectionBatch.model_validate(json.loads(raw))
        marks.append(time.perf_counter())
        done = service.create_many(session, principal, parsed.detections, enricher)
        session.flush()
        marks.append(time.perf_counter())
        results = [
            {"index": o.index, "status": "accepted", "detection": service.view(o.detection)}
            for o in done
            if o.detection is not None
        ]
        payload = BatchResult.model_validate(
            {"accepted": len(results), "rejected": 0, "results": results}
        ).model_dump(mode="json")
        json.dumps(payload)
        marks.append(time.perf_counter())
        session.rollback()
    steps = ["parse + validate the request", "service.create_many", "response (view, model, JSON)"]
    total = marks[-1] - marks[0]
    print(f"one batch of {len(done)}, unprofiled: {total * 1000:.0f} ms", file=out)
    for label, start, stop in zip(steps, marks, marks[1:], strict=False):
        print(
            f"  {label:32} {(stop - start) * 1000:7.0f} ms {(stop - start) / total:6.0%}", file=out
        )

    batch = cProfile.Profile()
    with sessions.begin() as session:
        batch.enable()
        outcomes = service.create_many(session, principal, bodies[:BATCH], enricher)
        views = [service.view(o.detection) for o in outcomes if o.detection is not None]
        session.flush()
        batch.disable()
    assert len(views) == min(BATCH, len(bodies))
    print(f"one batch of {len(views)} through service.create_many:", file=out)
    stats = pstats.Stats(batch, stream=out)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(15)

    singles = bodies[BATCH : BATCH + SINGLES]
    single = cProfile.Profile()
    single.enable()
    for body in singles:
        with sessions.begin() as session:
            detection = service.create(
                session, principal, DetectionCreate.model_validate(body), enricher
            )
            audit.record(session, principal, "detection.create", "detection", detection.id)
            service.view(detection)
    single.disable()
    print(f"{len(singles)} records, one transaction each (the single-POST path):", file=out)
    stats = pstats.Stats(single, stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)
    with contextlib.suppress(Exception):
        enricher.chemistry.close()  # type: ignore[attr-defined]
    engine.dispose()
    return out.getvalue()


# ---- main ------------------------------------------------------------------------------------


@dataclass
class Row:
    backend: str
    path: str
    detections: int
    seconds: float
    server_cpu: float | None = None  # CPU seconds of the server and its chemistry workers

    @property
    def rate(self) -> float:
        return self.detections / self.seconds


def postgres_reachable(url: str) -> bool:
    try:
        with psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3
        ):
            return True
    except psycopg.Error:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=2_000, help="how many to POST one by one")
    parser.add_argument("--structures", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=1, help="concurrent single-POST clients")
    parser.add_argument("--batch-clients", type=int, default=1)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--profile", action="store_true", help="profile the server-side work")
    args = parser.parse_args()

    library = load_library()
    bodies = dataset(library, args.detections, args.structures, args.seed)
    unidentified = sum(1 for body in bodies if "name" in body["substance"])
    distinct = len({str(body["substance"]) for body in bodies})
    print(
        f"{len(bodies):,} detections: {distinct:,} distinct substances reported, "
        f"{unidentified:,} ({unidentified / len(bodies):.0%}) by an unknown name"
    )
    backends = ["sqlite"]
    if not args.no_postgres:
        if postgres_reachable(args.postgres):
            backends.append("postgres")
        else:
            print(f"PostgreSQL unreachable at {args.postgres}: SQLite only")
    log = Path(tempfile.gettempdir()) / "sentinel-ingest-server.log"
    rows: list[Row] = []
    profiles: list[str] = []
    print(f"server output: {log}")
    clients = f"{args.clients} client{'s' if args.clients > 1 else ''}"
    for backend in backends:
        # Cold: the first detections into an empty database, nearly half of them first sightings
        # of a structure (each one analysed by RDKit). Warm: the last ones of the mix, posted
        # after the rest went in by batches, so that their first sightings are as rare as in
        # the mix as a whole (as on a server that has been running).
        cold, rest, warm = (
            bodies[: args.single],
            bodies[: -args.single],
            bodies[-args.single :],
        )
        for label, earlier, timed in (
            ("into an empty database", [], cold),
            ("after the rest", rest, warm),
        ):
            with database(backend, args.postgres) as url:
                engine, key, _ = prepare(url, library)
                with server(url, log) as (base, pid):
                    warm_up(base, key)
                    if earlier:
                        batches(base, key, earlier, args.batch_clients)
                    cpu = process_tree_cpu(pid)
                    seconds = single_posts(base, key, timed, args.clients)
                    cpu = process_tree_cpu(pid) - cpu
                rows.append(
                    Row(backend, f"single POSTs {label} ({clients})", len(timed), seconds, cpu)
                )
                print(f"  {backend}: single POSTs {label} done ({len(timed) / seconds:,.0f}/s)")
                engine.dispose()
        with database(backend, args.postgres) as url:
            engine, key, lab_id = prepare(url, library)
            with server(url, log) as (base, pid):
                warm_up(base, key)
                cpu = process_tree_cpu(pid)
                seconds = batches(base, key, bodies, args.batch_clients)
                cpu = process_tree_cpu(pid) - cpu
            rows.append(
                Row(
                    backend,
                    f"batches of 1,000 ({args.batch_clients} client"
                    f"{'s' if args.batch_clients > 1 else ''})",
                    len(bodies),
                    seconds,
                    cpu,
                )
            )
            print(f"  {backend}: batches done ({len(bodies) / seconds:,.0f}/s)")
            seconds, count = bare_insert(engine)
            rows.append(Row(backend, "bare SQLAlchemy Core executemany", count, seconds))
            if args.profile:
                with engine.begin() as connection:
                    connection.execute(delete(Detection))
                profiles.append(
                    f"--- {backend}: server-side work, in-process ---\n"
                    + profile_server_side(url, lab_id, bodies)
                )
            engine.dispose()

    load = os.getloadavg()[0]
    print(f"\nload average {load:.1f} on {os.cpu_count()} CPUs")
    header = ("backend", "path", "detections", "seconds", "per second", "x bare", "server CPU")
    print("{:9} {:50} {:>10} {:>8} {:>11} {:>8} {:>14}".format(*header))
    for row in rows:
        bare = next(r for r in rows if r.backend == row.backend and r.path.startswith("bare"))
        cpu_text = f"{1000 * row.server_cpu / row.detections:7.2f} ms/det" if row.server_cpu else ""
        print(
            f"{row.backend:9} {row.path:50} {row.detections:10,} {row.seconds:8.2f} "
            f"{row.rate:11,.0f} {row.rate / bare.rate:8.3f} {cpu_text:>14}"
        )
    print(
        "server CPU: the server process and its chemistry workers, per detection (load-"
        "independent; the database server's own CPU is not included)"
    )
    sqlite_rows = [row for row in rows if row.backend == "sqlite"]
    single_rate = next(r.rate for r in sqlite_rows if r.path.startswith("single POSTs after"))
    batch_rate = next(r.rate for r in sqlite_rows if r.path.startswith("batches"))
    print(
        f"targets on SQLite: batches >= 1,000/s: {'met' if batch_rate >= 1000 else 'MISSED'} "
        f"({batch_rate:,.0f}/s); single POSTs >= 200/s: "
        f"{'met' if single_rate >= 200 else 'MISSED'} ({single_rate:,.0f}/s)"
    )
    for profile in profiles:
        print(profile)


if __name__ == "__main__":
    main()
