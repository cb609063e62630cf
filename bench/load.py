"""Load benchmark: the running service under a realistic mix of lab posts and officer reads.

Run: .venv/bin/python bench/load.py [--backend sqlite|postgres|both] [--duration 30]
     [--warmup 10] [--concurrency 16] [--rate R] [--workers 2] [--profile DIR [--profile-waits]]
     [--small]
     [--app MODULE:FACTORY] [--uvicorn-arg=--http=httptools ...]

For each backend it builds a fresh database (a SQLite file in a temporary folder; a new
PostgreSQL database on the server of SENTINEL_BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/test, dropped afterwards) with the real `sentinel` commands
(db upgrade, references load, orgs create, keys create, users create), starts uvicorn in a
separate process on a free 127.0.0.1 port (one worker on SQLite, --workers on PostgreSQL), posts
a year of history through POST /v1/detections/batch, runs one scoring pass (so that there are
alerts to read), and then drives the server from this process with an aiohttp client (about a
third of httpx's CPU per request, which matters when client and server share two cores):

- 90% POST /v1/detections: six labs, realistic bodies over ~2,000 distinct substances drawn with
  a long-tailed popularity (reference standards by SMILES, salt SMILES, name or InChI; NPS
  analogues enumerated by bench/nps_analogues.py, which are novel and so get clustered; 10%
  names that match no reference standard), half of them with an Idempotency-Key;
- 10% reads: GET /v1/detections pages (lab and officer keys, some following next_cursor),
  GET /v1/detections/{id}, GET /v1/alerts, and the officers' console queue /console/alerts
  (signed in through /console/login). A read route that does not exist is left out.

Closed loop by default (--concurrency connections, each sending its next request as soon as the
last one is answered: the sustained rate); with --rate, requests are scheduled at that fixed rate
and latency is counted from the scheduled time, so a server that falls behind shows it. The
warm-up (each worker builds its Analyser and fills its analysis cache) is not measured.
Prints requests/s, p50/p95/p99 latency and errors per backend, the machine, and the CPU split
between this client, the server (uvicorn and every process under it), PostgreSQL and everything
else, with the CPU each request cost: client and server share the machine's cores, so that cost
bounds the rate more honestly than a run on a busy machine can. Exits with status 1 on any error.
With --profile DIR, py-spy samples the server processes over the measured window and the script
prints where their time goes (raw stacks kept in DIR). --small is the short run of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from nps_analogues import analogues  # noqa: E402

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
LABS = [  # (organisation name, country)
    ("Bundeskriminalamt KT", "DE"),
    ("NFI Den Haag", "NL"),
    ("CLKP Warszawa", "PL"),
    ("INPS Lyon", "FR"),
    ("INTCF Madrid", "ES"),
    ("NFC Linkoping", "SE"),
]
CENTRE = "National Early Warning Centre"
OFFICER_EMAIL = "load.officer@sentinel.example"
OFFICER_PASSWORD = "load-benchmark-officer-password"
POST_SHARE = 0.9
IDEMPOTENT_SHARE = 0.5
READ_WEIGHTS = {"detections_page": 0.35, "detection": 0.30, "alerts": 0.20, "console": 0.15}
OPERATIONS = ["post", *READ_WEIGHTS]
LABELS = {
    "post": "POST /v1/detections",
    "detections_page": "GET /v1/detections",
    "detection": "GET /v1/detections/{id}",
    "alerts": "GET /v1/alerts",
    "console": "GET /console/alerts",
}


# ---- the machine and its CPU -------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "n/a"


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> tuple[str, int, float] | None:
    """(command, parent pid, CPU seconds used) of a process, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    command = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return command, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def _all_processes() -> dict[int, tuple[str, int, float]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _proc_stat(int(entry))) is not None:
            found[int(entry)] = stat
    return found


def _machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / _TICKS, sum(values) / _TICKS


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    at: float
    machine_busy: float
    client: float
    server: dict[int, float]
    postgres: dict[int, float]


def cpu_snapshot(server_pid: int | None) -> CpuSnapshot:
    if not Path("/proc/stat").exists():
        return CpuSnapshot(time.perf_counter(), 0.0, time.process_time(), {}, {})
    processes = _all_processes()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (_command, parent, _cpu) in processes.items():
        children[parent].append(pid)
    server: dict[int, float] = {}
    stack = [server_pid] if server_pid in processes else []
    while stack:
        pid = stack.pop()
        server[pid] = processes[pid][2]
        stack.extend(children[pid])
    postgres = {pid: cpu for pid, (command, _, cpu) in processes.items() if command == "postgres"}
    busy, _total = _machine_busy_seconds()
    return CpuSnapshot(time.perf_counter(), busy, time.process_time(), server, postgres)


def _grown(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


@dataclass(frozen=True, slots=True)
class CpuUse:
    """Percent of one core over the window (2 cores = 200%)."""

    machine: float
    client: float
    server: float
    postgres: float

    @property
    def other(self) -> float:
        return max(0.0, self.machine - self.client - self.server - self.postgres)


def cpu_use(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    seconds = max(after.at - before.at, 1e-9)
    return CpuUse(
        machine=100 * (after.machine_busy - before.machine_busy) / seconds,
        client=100 * (after.client - before.client) / seconds,
        server=100 * _grown(before.server, after.server) / seconds,
        postgres=100 * _grown(before.postgres, after.postgres) / seconds,
    )


# ---- the workload ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lab:
    name: str
    country: str
    regions: tuple[str, ...]
    key: str = ""


@dataclass
class Workload:
    """Draws realistic request bodies; remembers what the server answered for later reads."""

    labs: list[Lab]
    officer_key: str
    substances: list[dict[str, str]]  # SubstanceInput bodies, most popular first
    cumulative: list[float]  # cumulative popularity weights of `substances`
    cutting_agents: list[str]
    run_tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    console_cookie: str | None = None
    reads: dict[str, float] = field(default_factory=lambda: dict(READ_WEIGHTS))
    seen_ids: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    lab_organisations: dict[str, int] = field(default_factory=dict)  # lab key -> organisation
    cursors: dict[str, str] = field(default_factory=dict)
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def distinct(self) -> int:
        return len(self.substances)

    def substance(self, rng: random.Random) -> dict[str, str]:
        return rng.choices(self.substances, cum_weights=self.cumulative)[0]

    def detection(self, rng: random.Random, lab: Lab, *, history: bool = False) -> dict[str, Any]:
        """One lab report: recent for live posts, anywhere in the past year for the history."""
        today = datetime.now(UTC).date()
        days_ago = rng.randrange(365) if history else min(int(rng.expovariate(1 / 6)), 90)
        sample_type = rng.choices(
            ["seizure", "test_purchase", "drug_checking", "biological", "other"],
            weights=[45, 5, 25, 22, 3],
        )[0]
        context = {
            "seizure": "seizure",
            "biological": rng.choice(["death", "intoxication", "intoxication", "driving"]),
        }.get(sample_type, rng.choice([None, "other"]))
        body: dict[str, Any] = {
            "substance": self.substance(rng),
            "detected_on": (today - timedelta(days=days_ago)).isoformat(),
            "country": lab.country,
            "sample_type": sample_type,
            "technique": rng.choice(["GC-MS", "GC-MS", "LC-HRMS", "LC-MS/MS", "FTIR", "NMR"]),
            "lab_reference": f"{lab.country}-{self.run_tag}-{next(self._numbers):07d}",
        }
        if context is not None:
            body["context"] = context
        if rng.random() < 0.6:
            body["region"] = rng.choice(lab.regions)
        if sample_type != "biological" and rng.random() < 0.5:
            body["purity_percent"] = round(rng.uniform(1, 99), 1)
        if sample_type in ("seizure", "test_purchase") and rng.random() < 0.7:
            unit = rng.choice(["g", "g", "mg", "tablets", "blotters"])
            body["quantity"] = {"value": round(rng.lognormvariate(1.5, 1.5), 2), "unit": unit}
        if self.cutting_agents and rng.random() < 0.25:
            body["co_detected"] = [
                {"name": name} for name in rng.sample(self.cutting_agents, rng.randint(1, 2))
            ]
        return body

    def request(self, rng: random.Random) -> tuple[str, str, str, dict[str, str], Any]:
        """(operation, method, path, headers, json body) of the next request of the mix."""
        if rng.random() < POST_SHARE or not self.reads:
            lab = rng.choice(self.labs)
            headers = {"Authorization": f"Bearer {lab.key}"}
            if rng.random() < IDEMPOTENT_SHARE:
                headers["Idempotency-Key"] = uuid.uuid4().hex
            return "post", "POST", "/v1/detections", headers, self.detection(rng, lab)
        operation = rng.choices(list(self.reads), weights=list(self.reads.values()))[0]
        officer = {"Authorization": f"Bearer {self.officer_key}"}
        if operation == "console":
            return operation, "GET", "/console/alerts", {"Cookie": self.console_cookie or ""}, None
        if operation == "alerts":
            query = "?limit=50&open_only=true" if rng.random() < 0.5 else "?limit=50"
            return operation, "GET", f"/v1/alerts{query}", officer, None
        lab = rng.choice(self.labs)
        as_lab = rng.random() < 0.5
        who = lab.key if as_lab else self.officer_key
        headers = {"Authorization": f"Bearer {who}"}
        if operation == "detection":
            if as_lab:
                ids = self.seen_ids.get(self.lab_organisations.get(lab.key, -1), [])
            else:
                ids = self.seen_ids[rng.choice(list(self.seen_ids))] if self.seen_ids else []
            if ids:
                return operation, "GET", f"/v1/detections/{rng.choice(ids)}", headers, None
            operation = "detections_page"  # nothing posted yet: read a page instead
        path = "/v1/detections?limit=50"
        if who in self.cursors and rng.random() < 0.3:
            path += f"&cursor={self.cursors.pop(who)}"
        elif not as_lab and rng.random() < 0.3:
            path += f"&country={lab.country}"
        return operation, "GET", path, headers, None

    def answered(self, operation: str, headers: dict[str, str], path: str, data: Any) -> None:
        """Keep ids and cursors from answers (decoded JSON), for the reads that follow."""
        if operation == "post":
            ids = self.seen_ids[data["organisation_id"]]
            ids.append(data["id"])
            if len(ids) > 5000:
                del ids[:1000]
            key = headers["Authorization"].removeprefix("Bearer ")
            self.lab_organisations.setdefault(key, data["organisation_id"])
        elif operation == "detections_page" and "cursor=" not in path:
            cursor = data.get("next_cursor")
            if cursor:
                self.cursors[headers["Authorization"].removeprefix("Bearer ")] = cursor


UNIDENTIFIED_WORDS = (
    ["white", "beige", "pink", "blue", "brown", "yellow", "green", "grey", "off-white"],
    ["powder", "crystals", "tablet", "capsule", "blotter", "liquid", "resin", "herbal mix"],
    ["unknown", "unidentified", "uncharacterised", "no reference", "not in library"],
)


def unidentified_names(count: int, rng: random.Random) -> list[str]:
    """Names a lab writes when the spectrum matches nothing: never a reference name."""
    names: set[str] = set()
    while len(names) < count:
        colour, form, note = (rng.choice(words) for words in UNIDENTIFIED_WORDS)
        letters = "".join(rng.choices("ABCDEFGHKLMNPRSTXZ", k=2))
        stamp = f"{letters}-{rng.randint(1, 999)}"
        names.add(f"{note} {colour} {form} {stamp}")
    return sorted(names)


def build_pool(
    references: Sequence[tuple[str, str, str, str]], novel: int, unidentified: int, seed: int
) -> tuple[list[dict[str, str]], list[float], list[str]]:
    """SubstanceInput bodies, most popular first, with cumulative weights; and cutting agents.

    references: (name, smiles, inchi, category) of the loaded library. Each reference standard
    is written one fixed way (SMILES, hydrochloride SMILES, name or InChI), so the pool holds
    one input text per substance. Unidentified names get 10% of the draws, the rest is shared
    by the identified structures, 60:40 between reference standards and novel analogues, each
    with a long tail.
    """
    rng = random.Random(seed)
    known: list[dict[str, str]] = []
    cutting = [name for name, _s, _i, category in references if category == "cutting_agent"]
    for name, smiles, inchi, _category in references:
        form = rng.choices(["smiles", "salt", "name", "inchi"], weights=[55, 15, 25, 5])[0]
        if form == "salt":
            known.append({"smiles": f"{smiles}.Cl"})
        elif form == "name":
            known.append({"name": name})
        else:
            known.append({form: inchi if form == "inchi" else smiles})
    rng.shuffle(known)
    new = [{"smiles": smiles} for smiles in analogues(novel, seed=seed)]
    names = [{"name": name} for name in unidentified_names(unidentified, rng)]
    groups = [(known, 0.54), (new, 0.36), (names, 0.10)]
    pool: list[tuple[float, dict[str, str]]] = []
    for members, share in groups:
        if not members:
            continue
        weights = [1 / (rank + 5.0) ** 0.9 for rank in range(len(members))]
        scale = share / sum(weights)
        pool.extend(
            (weight * scale, member) for weight, member in zip(weights, members, strict=True)
        )
    pool.sort(key=lambda item: -item[0])
    substances = [member for _weight, member in pool]
    cumulative = list(itertools.accumulate(weight for weight, _member in pool))
    return substances, cumulative, cutting


# ---- the database and the server ---------------------------------------------------------


def postgres_server_url() -> str:
    return os.environ.get(
        "SENTINEL_BENCH_POSTGRES_URL",
        os.environ.get("SENTINEL_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
    ).replace("postgresql+psycopg://", "postgresql://")


def postgres_reachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0][:200]


@contextlib.contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'sentinel.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    server = postgres_server_url()
    name = f"sentinel_load_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def sentinel(database_url: str, *args: str, stdin: str | None = None) -> str:
    """Run a `sentinel` command (in this process, as the CLI would) and return its stdout."""
    from typer.testing import CliRunner

    from app.cli import cli

    result = CliRunner().invoke(
        cli, list(args), input=stdin, env={"SENTINEL_DATABASE_URL": database_url}
    )
    if result.exit_code != 0:
        raise RuntimeError(
            f"sentinel {' '.join(args)} failed ({result.exit_code}): {result.output}"
        ) from result.exception
    return result.stdout


def prepare(database_url: str, *, seed: int, small: bool) -> Workload:
    """Migrate, load the library, create the labs, an agency with an officer key and user."""
    import pycountry
    from sqlalchemy import select

    from app.db import make_engine, make_sessionmaker
    from app.models import Substance

    sentinel(database_url, "db", "upgrade")
    sentinel(database_url, "references", "load")
    labs = []
    for name, country in LABS:
        sentinel(database_url, "orgs", "create", name, "--kind", "lab", "--country", country)
        key = sentinel(database_url, "keys", "create", "--org", name, "--role", "lab")
        subdivisions = sorted(
            s.code
            for s in pycountry.subdivisions.get(country_code=country)  # type: ignore[no-untyped-call]
            if getattr(s, "parent_code", None) is None
        )
        labs.append(Lab(name, country, tuple(subdivisions[:8]), key.strip().splitlines()[0]))
    sentinel(database_url, "orgs", "create", CENTRE, "--kind", "agency")
    officer = sentinel(database_url, "keys", "create", "--org", CENTRE, "--role", "officer")
    sentinel(
        database_url,
        "users",
        "create",
        OFFICER_EMAIL,
        "--role",
        "officer",
        "--org",
        CENTRE,
        stdin=OFFICER_PASSWORD + "\n",
    )
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            references = [
                (s.name, s.smiles, s.inchi, s.category.value)
                for s in session.scalars(
                    select(Substance).where(Substance.retired_at.is_(None)).order_by(Substance.id)
                )
            ]
    finally:
        engine.dispose()
    if small:
        references = references[:300]
    substances, cumulative, cutting = build_pool(
        references, novel=60 if small else 700, unidentified=20 if small else 200, seed=seed
    )
    return Workload(
        labs=labs,
        officer_key=officer.strip().splitlines()[0],
        substances=substances,
        cumulative=cumulative,
        cutting_agents=cutting,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout|Shutdown)\b")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    workers: int

    def exceptions(self) -> Counter[str]:
        """The exceptions the server logged (their final line), with counts."""
        found: Counter[str] = Counter()
        with contextlib.suppress(OSError):
            for line in self.log.read_text(errors="replace").splitlines():
                if _EXCEPTION_LINE.match(line):
                    found[line[:200]] += 1
        return found

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM (uvicorn stops its workers), then SIGKILL whatever of ours is left."""
        ours = [pid for pid in cpu_snapshot(self.process.pid).server if pid != self.process.pid]
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        time.sleep(0.5)
        for pid in ours:  # workers stuck in a request (and their helpers) outlive a killed parent
            with contextlib.suppress(OSError):
                if b"python" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


def start_server(
    database_url: str,
    workers: int,
    folder: Path,
    *,
    app: str = "app.main:create_app",
    extra: Sequence[str] = (),
) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "SENTINEL_DATABASE_URL": database_url,
        "SENTINEL_LOG_LEVEL": "warning",
        "SENTINEL_SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "SENTINEL_PUBLIC_URL": f"http://127.0.0.1:{port}",
        # The limiter would refuse a benchmark's traffic from six keys: lift it well above it.
        "SENTINEL_RATE_LIMIT_PER_MINUTE": "100000000",
        "SENTINEL_RATE_LIMIT_BURST": "1000000",
        "SENTINEL_RUN_SCHEDULER": "false",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
        *extra,
    ]
    log = folder / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    server = Server(process, f"http://127.0.0.1:{port}", log, workers)
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}:\n{server.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/readyz").status_code == 200:
                    return server
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"the server was not ready within 120 s:\n{server.tail()}")
            time.sleep(0.2)


def sign_in(base_url: str) -> str | None:
    """The console session cookie of the officer, or None when there is no console."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        form = client.get("/console/login")
        if form.status_code in (404, 405):
            return None
        match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        if form.status_code != 200 or match is None:
            raise RuntimeError(f"console sign-in form: {form.status_code} {form.text[:200]}")
        answer = client.post(
            "/console/login",
            data={
                "email": OFFICER_EMAIL,
                "password": OFFICER_PASSWORD,
                "csrf_token": match.group(1),
                "next": "/console/alerts",
            },
        )
        token = answer.cookies.get("sentinel_session")
        if answer.status_code != 303 or not token:
            raise RuntimeError(f"console sign-in failed: {answer.status_code} {answer.text[:200]}")
        return f"sentinel_session={token}"


def seed_history(
    base_url: str, workload: Workload, count: int, rng: random.Random, out: Callable[[str], None]
) -> None:
    """A year of detections through the batch API, so reads and scoring have data."""
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=300) as client:
        posted = 0
        while posted < count:
            lab = rng.choice(workload.labs)
            size = min(250, count - posted)
            records = [workload.detection(rng, lab, history=True) for _ in range(size)]
            answer = client.post(
                "/v1/detections/batch",
                json={"detections": records},
                headers={"Authorization": f"Bearer {lab.key}"},
            )
            if answer.status_code != 200 or answer.json()["rejected"]:
                raise RuntimeError(f"history batch: {answer.status_code} {answer.text[:500]}")
            for result in answer.json()["results"]:
                workload.seen_ids[result["detection"]["organisation_id"]].append(
                    result["detection"]["id"]
                )
                workload.lab_organisations.setdefault(
                    lab.key, result["detection"]["organisation_id"]
                )
            posted += size
    out(f"  history: {count} detections in {time.perf_counter() - started:.1f} s")


def probe_reads(base_url: str, workload: Workload, out: Callable[[str], None]) -> None:
    """Leave out read routes this build does not have (404/405 from the router)."""
    officer = {"Authorization": f"Bearer {workload.officer_key}"}
    some_id = next((ids[0] for ids in workload.seen_ids.values() if ids), 1)
    probes = {
        "detections_page": ("/v1/detections?limit=1", officer),
        "detection": (f"/v1/detections/{some_id}", officer),
        "alerts": ("/v1/alerts?limit=1", officer),
        "console": ("/console/alerts", {"Cookie": workload.console_cookie or ""}),
    }
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for operation, (path, headers) in probes.items():
            if operation == "console" and workload.console_cookie is None:
                status = 404
            else:
                status = client.get(path, headers=headers).status_code
            if status in (404, 405):
                workload.reads.pop(operation, None)
                out(f"  skipped {LABELS[operation]}: the route answers {status}")
            elif status != 200:
                raise RuntimeError(f"{LABELS[operation]} answers {status} before the run")


# ---- driving the server ------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    operation: str
    start: float
    end: float
    error: str | None  # None when the expected status came back


@dataclass
class Run:
    samples: list[Sample]
    window: tuple[float, float]
    cpu: CpuUse | None
    profile: Path | None = None
    backlog: int = 0  # with --rate: requests scheduled but never sent by the end

    def measured(self) -> list[Sample]:
        begin, end = self.window
        return [s for s in self.samples if s.start >= begin and s.end <= end]

    def warmup_errors(self) -> list[Sample]:
        return [s for s in self.samples if s.start < self.window[0] and s.error]


async def _send(
    client: aiohttp.ClientSession,
    workload: Workload,
    rng: random.Random,
    samples: list[Sample],
    scheduled: float | None = None,
) -> None:
    operation, method, path, headers, body = workload.request(rng)
    start = time.perf_counter() if scheduled is None else scheduled
    error = None
    try:
        async with client.request(method, path, headers=headers, json=body) as response:
            payload = await response.read()
            status = response.status
        expected = 201 if operation == "post" else 200
        if status == expected:
            if operation in ("post", "detections_page"):
                workload.answered(operation, headers, path, json.loads(payload))
        else:
            error = f"{status} {payload[:300].decode(errors='replace')}"
    except (aiohttp.ClientError, TimeoutError) as failure:
        error = f"{type(failure).__name__}: {failure}"
    samples.append(Sample(operation, start, time.perf_counter(), error))


async def drive(
    base_url: str,
    workload: Workload,
    *,
    concurrency: int,
    rate: float | None,
    warmup: float,
    duration: float,
    seed: int,
    server_pid: int,
    profile_to: Path | None,
    waits: bool = False,
) -> Run:
    """Closed loop over `concurrency` connections, or `rate` requests/s scheduled ahead."""
    samples: list[Sample] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        base_url=base_url,
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),  # the console cookie is sent explicitly
    ) as client:
        begin = time.perf_counter() + warmup
        end = begin + duration
        snapshots: list[CpuSnapshot] = []
        profiler: list[subprocess.Popen[bytes]] = []
        backlog: list[int] = []

        async def meter() -> None:
            await asyncio.sleep(max(0.0, begin - time.perf_counter()))
            snapshots.append(cpu_snapshot(server_pid))
            if profile_to is not None:
                profiler.append(start_profiler(server_pid, duration, profile_to, waits=waits))
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            snapshots.append(cpu_snapshot(server_pid))

        async def closed(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            # Connections open one by one, as clients arrive: opened in one burst, they are all
            # accepted by whichever uvicorn worker wakes first, and the others stay idle.
            await asyncio.sleep(index * min(0.05, warmup / max(1, concurrency) / 2))
            while time.perf_counter() < end:
                await _send(client, workload, rng, samples)

        async def scheduled(per_second: float) -> None:
            rng = random.Random(seed)
            gate = asyncio.Semaphore(concurrency)
            queued: set[asyncio.Task[None]] = set()  # scheduled, waiting for a connection
            running: set[asyncio.Task[None]] = set()
            first = time.perf_counter()

            async def one(at: float) -> None:
                async with gate:
                    task = asyncio.current_task()
                    assert task is not None
                    queued.discard(task)
                    running.add(task)
                    await _send(client, workload, rng, samples, scheduled=at)
                    running.discard(task)

            for number in itertools.count():
                at = first + number / per_second
                if at >= end:
                    break
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                queued.add(asyncio.create_task(one(at)))
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            backlog.append(len(queued))  # never sent: the server fell behind the rate
            for task in queued:
                task.cancel()
            await asyncio.gather(*queued, *running, return_exceptions=True)

        runners = [meter()]
        if rate is None:
            runners += [closed(index) for index in range(concurrency)]
        else:
            runners.append(scheduled(rate))
        await asyncio.gather(*runners)
    cpu = cpu_use(snapshots[0], snapshots[1]) if len(snapshots) == 2 else None
    if profiler:
        try:
            profiler[0].wait(timeout=60)
        except subprocess.TimeoutExpired:
            profiler[0].kill()
    return Run(samples, (begin, end), cpu, profile_to if profiler else None, sum(backlog))


# ---- profiling (optional) ----------------------------------------------------------------


def start_profiler(
    server_pid: int, duration: float, output: Path, *, waits: bool = False
) -> subprocess.Popen[bytes]:
    """py-spy over the server and its workers for the measured window (raw collapsed stacks).

    Only threads holding the GIL are sampled (--gil), so the profile shows where the server's
    Python CPU goes, not threads waiting on the database or the network; with `waits`, every
    thread is sampled, waiting or not (--idle), to show where requests wait.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    mode = "--idle" if waits else "--gil"
    command = [py_spy, "record", "--pid", str(server_pid), "--subprocesses", mode]
    command += ["--nonblocking", "--rate", "100", "--duration", str(max(1, int(duration)))]
    command += ["--format", "raw", "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


_FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_SITE = ("site-packages/", f"{ROOT}/", "/lib/python3.11/", "<frozen ")


def _frame_file(frame: str) -> tuple[str, str]:
    """(file relative to its package root, function) of a py-spy frame."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return "", frame.strip()
    file = match["file"]
    for marker in _SITE:
        if marker in file:
            file = file.split(marker, 1)[1]
    return file, match["function"]


def read_stacks(path: Path) -> Iterator[tuple[list[tuple[str, str]], int]]:
    """py-spy raw lines as (frames root first, count); process frames are dropped."""
    text = ""
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace")
    pending = ""
    for line in text.splitlines():
        pending += line
        stack, _, count = pending.rpartition(" ")
        if not count.isdigit():  # a process frame whose command line held a newline
            pending += "\n"
            continue
        pending = ""
        frames = [
            _frame_file(frame)
            for frame in stack.split(";")
            if not frame.startswith(("process ", "thread (")) and "spawn_main(" not in frame
        ]
        yield frames, int(count)


def _package(file: str) -> str:
    head = file.split("/", 1)[0]
    return head.removesuffix(".py") if head else "?"


def profile_summary(path: Path, top: int = 18) -> list[str]:
    """Where the server's Python CPU goes: self time by package, and app functions inclusive."""
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, count in read_stacks(path):
        if not frames:
            continue
        total += count
        by_package[_package(frames[-1][0])] += count
        names = {f"{file}:{function}" for file, function in frames}
        for name in names:
            if name.startswith(("app/", "chemistry/", "alerts/", "reference_standards/")):
                inclusive[name] += count
    if not total:
        return ["  (py-spy recorded nothing: is ptrace allowed?)"]
    lines = [f"  {total} samples of threads holding the GIL; self time by package:"]
    packages = [f"{name} {100 * count / total:.1f}%" for name, count in by_package.most_common(15)]
    lines += ["  " + "  ".join(packages[i : i + 5]) for i in range(0, len(packages), 5)]
    lines.append("  project functions, inclusive (everything they call):")
    lines += [
        f"  {100 * count / total:5.1f}%  {name}" for name, count in inclusive.most_common(top)
    ]
    return lines


# ---- reporting ---------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass(frozen=True, slots=True)
class Figures:
    requests: int
    per_second: float
    p50: float
    p95: float
    p99: float
    errors: int

    @classmethod
    def of(cls, samples: Sequence[Sample], seconds: float) -> Figures:
        latencies = sorted(1000 * (s.end - s.start) for s in samples)
        return cls(
            requests=len(samples),
            per_second=len(samples) / seconds,
            p50=percentile(latencies, 0.50),
            p95=percentile(latencies, 0.95),
            p99=percentile(latencies, 0.99),
            errors=sum(1 for s in samples if s.error),
        )


@dataclass
class BackendResult:
    backend: str
    workers: int
    run: Run
    setup_seconds: float
    alerts: int
    server_exceptions: Counter[str]  # final lines of the tracebacks the server logged

    @property
    def seconds(self) -> float:
        return self.run.window[1] - self.run.window[0]

    def figures(self, operation: str | None = None) -> Figures:
        samples = self.run.measured()
        if operation is not None:
            samples = [s for s in samples if s.operation == operation]
        return Figures.of(samples, self.seconds)


def header(first: str, second: str, width: int) -> str:
    return (
        f"{first:<10}{second:<{width}}{'requests':>9}{'requests/s':>12}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"
    )


def table_row(label: str, server: str, figures: Figures, width: int) -> str:
    return (
        f"{label:<10}{server:<{width}}{figures.requests:>9}{figures.per_second:>12.1f}"
        f"{figures.p50:>9.1f}{figures.p95:>9.1f}{figures.p99:>9.1f}{figures.errors:>8}"
    )


def report(results: list[BackendResult], args: argparse.Namespace) -> list[str]:
    since = "its scheduled time" if args.rate else "the request being sent"
    lines = ["", f"Results (measured window only; latency from {since} to response read)", ""]
    lines += [header("backend", "server", 20), "-" * 86]
    for result in results:
        server = f"uvicorn, {result.workers} worker{'s' if result.workers > 1 else ''}"
        lines.append(table_row(result.backend, server, result.figures(), 20))
    lines += ["", "By operation", "", header("backend", "operation", 26), "-" * 92]
    for result in results:
        for operation in OPERATIONS:
            figures = result.figures(operation)
            if figures.requests:
                lines.append(table_row(result.backend, LABELS[operation], figures, 26))
    lines += [
        "",
        "CPU during the measured window (% of one core; this machine has "
        f"{os.cpu_count()} cores = {100 * (os.cpu_count() or 1)}%)",
        "",
    ]
    for result in results:
        cpu = result.run.cpu
        if cpu is None:
            continue
        lines.append(
            f"{result.backend:<10}machine {cpu.machine:5.0f}%  client {cpu.client:4.0f}%  "
            f"server {cpu.server:4.0f}%  postgres {cpu.postgres:4.0f}%  "
            f"other processes {cpu.other:4.0f}%"
        )
        requests = result.figures().requests
        if requests >= 50:  # fewer says nothing about the cost of a request
            per = {  # CPU milliseconds per measured request
                "client": cpu.client * result.seconds * 10 / requests,
                "server": cpu.server * result.seconds * 10 / requests,
                "postgres": cpu.postgres * result.seconds * 10 / requests,
            }
            cores = os.cpu_count() or 1
            ceiling = 1000 * cores / sum(per.values())
            lines.append(
                f"{'':<10}CPU per request: client {per['client']:.1f} ms, server "
                f"{per['server']:.1f} ms, postgres {per['postgres']:.1f} ms; so {cores} cores "
                f"with nothing else running could serve at most ~{ceiling:.0f} requests/s"
            )
    for result in results:
        if result.run.backlog:
            lines.append(
                f"{result.backend}: fell behind the rate; {result.run.backlog} scheduled requests "
                "were still waiting for a connection at the end (not in the figures above)"
            )
    problems: list[str] = []
    for result in results:
        failed = [s for s in result.run.measured() if s.error] + result.run.warmup_errors()
        if result.run.warmup_errors():
            lines.append(
                f"{result.backend}: {len(result.run.warmup_errors())} errors during the warm-up"
            )
        kinds = Counter(
            f"{LABELS[s.operation]}: {(s.error or '').splitlines()[0][:160]}" for s in failed
        )
        problems += [f"  {result.backend} {count:5} x {kind}" for kind, count in kinds.items()]
        if result.server_exceptions:
            problems.append(f"  {result.backend} server log (exceptions, or its last lines):")
            problems += [
                f"  {count:5} x {line}" for line, count in result.server_exceptions.most_common(8)
            ]
    if problems:
        lines += ["", "Errors (measured window and warm-up):", *problems]
    lines.append("")
    for result in results:
        if result.backend != "postgres" or args.small:
            continue
        figures = result.figures()
        met = (
            figures.per_second >= 300
            and figures.p99 < 250
            and figures.errors == 0
            and not result.run.backlog
        )
        lines.append(
            f"target (PostgreSQL, 2 workers, 2 cores: >= 300 requests/s, p99 < 250 ms, no "
            f"errors): {'met' if met else 'NOT met'} with {result.workers} workers"
        )
    for result in results:
        if result.run.profile is not None:
            lines += [
                "",
                f"Where the {result.backend} server's time goes (py-spy, {result.run.profile}):",
                *profile_summary(result.run.profile),
            ]
    return lines


# ---- one backend, start to finish --------------------------------------------------------


def count_alerts(database_url: str) -> int:
    from sqlalchemy import func, select

    from app.db import make_engine
    from app.models import Alert

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(Alert)) or 0)
    finally:
        engine.dispose()


def run_backend(
    backend: str, args: argparse.Namespace, out: Callable[[str], None]
) -> BackendResult:
    workers = args.workers if backend == "postgres" else 1
    folder = Path(tempfile.mkdtemp(prefix=f"sentinel-load-{backend}-"))
    rng = random.Random(args.seed)
    started = time.perf_counter()
    try:
        with fresh_database(backend, folder) as database_url:
            out(f"{backend}: preparing the database (sentinel db upgrade, references load, ...)")
            workload = prepare(database_url, seed=args.seed, small=args.small)
            out(
                f"  workload: {workload.distinct} distinct substances (reference standards, "
                f"novel analogues, unidentified names), {len(workload.labs)} labs"
            )
            out(f"{backend}: starting uvicorn with {workers} worker(s)")
            server = start_server(
                database_url, workers, folder, app=args.app, extra=args.uvicorn_arg
            )
            try:
                seed_history(server.base_url, workload, args.history, rng, out)
                sentinel(database_url, "score")
                alerts = count_alerts(database_url)
                out(f"  scoring pass: {alerts} alerts")
                workload.console_cookie = sign_in(server.base_url)
                probe_reads(server.base_url, workload, out)
                setup = time.perf_counter() - started
                out(
                    f"{backend}: warm-up {args.warmup:g} s, then {args.duration:g} s measured"
                    + (f" at {args.rate:g} requests/s" if args.rate else "")
                )
                profile = None
                if args.profile is not None:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    profile = args.profile / f"{backend}.txt"
                run = asyncio.run(
                    drive(
                        server.base_url,
                        workload,
                        concurrency=args.concurrency,
                        rate=args.rate,
                        warmup=args.warmup,
                        duration=args.duration,
                        seed=args.seed,
                        server_pid=server.process.pid,
                        profile_to=profile,
                        waits=args.profile_waits,
                    )
                )
                if server.process.poll() is not None:
                    raise RuntimeError(f"the server died during the run:\n{server.tail()}")
            finally:
                server.stop()
        exceptions = server.exceptions()
        if not exceptions and any(s.error for s in run.samples):
            exceptions = Counter(server.tail(15).splitlines())  # no traceback: show the end
        return BackendResult(backend, workers, run, setup, alerts, exceptions)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres", "both"],
        help="default: both (PostgreSQL only when reachable); sqlite with --small",
    )
    parser.add_argument("--duration", type=float, help="measured seconds (default 30)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds first (default 10)")
    parser.add_argument("--concurrency", type=int, help="connections (default 16)")
    parser.add_argument(
        "--rate", type=float, help="fixed arrival rate, requests/s (default: closed loop)"
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers on PostgreSQL")
    parser.add_argument("--history", type=int, help="detections posted before (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="py-spy the server into this folder")
    parser.add_argument(
        "--profile-waits",
        action="store_true",
        help="with --profile: sample waiting threads too, to see where requests wait",
    )
    parser.add_argument("--small", action="store_true", help="a run of a few seconds")
    parser.add_argument(
        "--app",
        default="app.main:create_app",
        help="the app factory uvicorn serves (to benchmark a variant)",
    )
    parser.add_argument(
        "--uvicorn-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="passed to uvicorn, e.g. --uvicorn-arg=--http=httptools (repeatable)",
    )
    args = parser.parse_args(argv)
    small = {"duration": 3.0, "warmup": 2.0, "concurrency": 4, "history": 40, "backend": "sqlite"}
    full = {"duration": 30.0, "warmup": 10.0, "concurrency": 16, "history": 2000, "backend": "both"}
    for name, value in (small if args.small else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0 or args.workers < 1:
        parser.error("--concurrency and --workers must be >= 1, --duration > 0, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def out(line: str) -> None:
        print(line, flush=True)

    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    skipped: list[str] = []
    if "postgres" in backends and (reason := postgres_reachable(postgres_server_url())):
        if args.backend == "postgres":
            out(f"PostgreSQL unreachable at {postgres_server_url()}: {reason}")
            return 2
        backends.remove("postgres")
        skipped.append(f"postgres skipped: unreachable ({reason})")
    out("Sentinel-NPS load benchmark" + (" (small)" if args.small else ""))
    out(
        f"machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, Python "
        f"{platform.python_version()}; load average before the run {load_average()}"
    )
    out(
        f"note: client, server (and PostgreSQL) share these {os.cpu_count()} cores; the client "
        "and other processes' CPU is shown below"
    )
    mode = (
        f"fixed rate {args.rate:g} requests/s, at most {args.concurrency} connections"
        if args.rate
        else f"closed loop over {args.concurrency} connections"
    )
    out(
        f"client: aiohttp {aiohttp.__version__}, {mode}; warm-up {args.warmup:g} s "
        f"excluded, {args.duration:g} s measured"
    )
    variant = " ".join([args.app, *args.uvicorn_arg])
    out(f"server: uvicorn {variant}, on 127.0.0.1; rate limits lifted for the run")
    out(
        f"mix: {POST_SHARE:.0%} POST /v1/detections ({len(LABS)} labs, 10% unidentified names, "
        "half with an Idempotency-Key), "
        f"{1 - POST_SHARE:.0%} reads (detection pages and by id, alerts, console queue)"
    )
    for line in skipped:
        out(line)
    results = [run_backend(backend, args, out) for backend in backends]
    for line in report(results, args):
        out(line)
    errors = sum(r.figures().errors + len(r.run.warmup_errors()) for r in results)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
