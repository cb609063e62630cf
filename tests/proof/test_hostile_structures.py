"""Hostile structures through the API (POST /v1/analyse and POST /v1/detections): every input
gets a 422 problem+json naming the field with a reason, or a valid result; never a 500. The
service stays up (a health check after each batch), each request finishes within a safety
bound, and the chemistry isolation contains inputs that hang, crash or exhaust memory.

The corpus is tests/chemistry/hostile.py. The chemistry is the same on both database backends,
so these run on SQLite only.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.chemistry_pool import ChemistryPool
from app.enrichment import Enricher
from chemistry.structures import MAX_RINGS
from reference_standards import Library
from tests.chemistry.hostile import (
    GRAPHENE_OXIDE_FLAKE,
    Hostile,
    corpus,
    inchi_like,
    mutated_smiles,
    smiles_like,
)
from tests.conftest import auth
from tests.proof import misbehaving_chemistry as misbehaving

# A safety bound per request, not a speed target: the slowest corpus entry takes ~0.1 s.
SECONDS_PER_REQUEST = 2.0
BATCH = 50
PROBLEM_JSON = "application/problem+json"
ENDPOINTS = ("analyse", "detections")
CORPUS = corpus()


@pytest.fixture(autouse=True)
def _sqlite_only(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the chemistry path is the same on both backends; tested on SQLite")


@pytest.fixture
def lab(client: TestClient, keys: dict[str, str], loaded_references: Library) -> str:
    """A lab's key, with the chemistry warmed (workers started, Analyser loaded)."""
    warm = post(client, keys["lab_a"], "analyse", "smiles", "CNC(C)Cc1ccc2OCOc2c1")
    assert warm.status_code == 200, warm.text
    return keys["lab_a"]


class Timings:
    def __init__(self) -> None:
        self.seconds: list[tuple[float, str]] = []

    def add(self, seconds: float, label: str) -> None:
        self.seconds.append((seconds, label))

    def report(self, title: str) -> None:
        slowest = sorted(self.seconds, reverse=True)[:10]
        print(f"\n{title}: {len(self.seconds)} requests, slowest:")
        for seconds, label in slowest:
            print(f"  {seconds * 1000:8.1f} ms  {label}")
        assert slowest[0][0] < SECONDS_PER_REQUEST, f"{slowest[0][1]} took {slowest[0][0]:.2f} s"


def post(client: TestClient, key: str, endpoint: str, fmt: str, text: str) -> Any:
    """POST the structure as the field `fmt`; the body is encoded by hand (json.dumps escapes
    lone surrogates and control characters, which httpx's encoder refuses)."""
    if endpoint == "analyse":
        url, body = "/v1/analyse", {fmt: text}
    else:
        url = "/v1/detections"
        body = {
            "substance": {fmt: text},
            "detected_on": (date.today() - timedelta(days=1)).isoformat(),
            "country": "DE",
            "sample_type": "seizure",
        }
    return client.post(
        url,
        content=json.dumps(body),
        headers={**auth(key), "Content-Type": "application/json"},
    )


def check_answer(response: Any, endpoint: str, fmt: str, text: str) -> None:
    """A valid result, or a 422 problem+json naming the structure's field with a reason."""
    shown = f"{endpoint} {fmt} {text[:60]!r}"
    assert response.status_code in (200, 201, 422), f"{shown}: {response.status_code}"
    body = response.json()
    if response.status_code == 422:
        assert response.headers["content-type"] == PROBLEM_JSON, shown
        fields = {error["field"] for error in body["errors"]}
        # /v1/analyse names the field "smiles" when the schema refuses it (too long) and
        # "body.smiles" when the chemistry does; a body whose JSON cannot be decoded at all
        # (a lone surrogate) is refused as "body".
        expected = {fmt, f"body.{fmt}"} if endpoint == "analyse" else {f"substance.{fmt}"}
        assert fields & (expected | {"body"}), f"{shown}: {body['errors']}"
        assert all(error["reason"].strip() for error in body["errors"]), shown
        return
    assert response.status_code == (200 if endpoint == "analyse" else 201), shown
    assert body["input"] == text.strip() or body["input"] == text, shown
    assert len(body["inchikey"]) == 27, shown
    assert body["smiles"], shown


def healthy(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def batches(entries: list[Hostile]) -> Iterator[list[Hostile]]:
    for start in range(0, len(entries), BATCH):
        yield entries[start : start + BATCH]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_hostile_structure_gets_a_422_or_a_result_in_bounded_time(
    client: TestClient, lab: str, endpoint: str
) -> None:
    timings = Timings()
    for batch in batches(CORPUS):
        for entry in batch:
            started = time.perf_counter()
            response = post(client, lab, endpoint, entry.fmt, entry.text)
            timings.add(time.perf_counter() - started, f"{entry.id} ({response.status_code})")
            check_answer(response, endpoint, entry.fmt, entry.text)
        healthy(client)
    timings.report(f"POST /v1/{endpoint}, hostile corpus")


# ---- property-based: random strings through the API ------------------------------------------

HTTP_PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
random_inputs = st.one_of(
    st.tuples(st.just("smiles"), st.text(max_size=200)),
    st.tuples(st.just("inchi"), st.text(max_size=200)),
    st.tuples(st.just("smiles"), smiles_like),
    st.tuples(st.just("smiles"), mutated_smiles()),
    st.tuples(st.just("inchi"), inchi_like),
)


@HTTP_PROPERTY
@given(data=st.lists(random_inputs, min_size=1, max_size=10))
def test_random_strings_get_a_422_or_a_result_and_the_service_stays_up(
    client: TestClient, lab: str, data: list[tuple[str, str]]
) -> None:
    for fmt, text in data:
        for endpoint in ENDPOINTS:
            started = time.perf_counter()
            response = post(client, lab, endpoint, fmt, text)
            assert time.perf_counter() - started < SECONDS_PER_REQUEST, (fmt, text)
            check_answer(response, endpoint, fmt, text)
    healthy(client)


# ---- isolation: inputs that hang, crash or exhaust a worker ------------------------------------

ISOLATION_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def misbehaving_pool() -> Iterator[ChemistryPool]:
    """One worker with a 1 s time limit and the default memory limit, running the analyse of
    tests/proof/misbehaving_chemistry.py: its magic inputs hang, crash or allocate, and it has
    no ring limit."""
    pool = ChemistryPool(
        workers=1,
        timeout=ISOLATION_TIMEOUT,
        analyse="tests.proof.misbehaving_chemistry:analyse_or_misbehave",
    )
    yield pool
    pool.close()


@pytest.fixture
def isolated(client: TestClient, lab: str, misbehaving_pool: ChemistryPool) -> ChemistryPool:
    """The app, analysing submitted structures with the misbehaving pool."""
    app: Any = client.app
    app.state.enricher = Enricher(app.state.enricher.catalogue, chemistry=misbehaving_pool)
    assert_service_answers(client, lab)  # a worker started, with the Analyser loaded
    return misbehaving_pool


_FRESH = itertools.count(2)


def assert_service_answers(client: TestClient, lab: str) -> None:
    """Healthy, and analysing a structure not in the Enricher's cache (so a worker must run)."""
    healthy(client)
    alkane = "C" * next(_FRESH)
    response = post(client, lab, "analyse", "smiles", alkane)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("endpoint", "text", "reason"),
    [
        (
            "analyse",
            misbehaving.HANG,
            f"structure could not be processed within {ISOLATION_TIMEOUT:g} s",
        ),
        ("analyse", misbehaving.SEGFAULT, "the chemistry worker was killed by SIGSEGV"),
        ("analyse", misbehaving.ABORT, "the chemistry worker was killed by SIGABRT"),
        (
            "analyse",
            misbehaving.ALLOCATE,
            "structure could not be processed within the memory limit (1024 MiB)",
        ),
        (
            "detections",
            misbehaving.SEGFAULT + "-detection",
            "the chemistry worker was killed by SIGSEGV",
        ),
    ],
    ids=["hang", "segfault", "abort", "memory", "detection-segfault"],
)
def test_an_input_that_hangs_crashes_or_exhausts_a_worker_gets_a_422_and_the_service_stays_up(
    client: TestClient, lab: str, isolated: ChemistryPool, endpoint: str, text: str, reason: str
) -> None:
    restarts = isolated.restarts
    started = time.perf_counter()
    response = post(client, lab, endpoint, "smiles", text)
    elapsed = time.perf_counter() - started

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    [error] = response.json()["errors"]
    assert error["field"] == ("body.smiles" if endpoint == "analyse" else "substance.smiles")
    assert reason in error["reason"]
    assert elapsed < ISOLATION_TIMEOUT + SECONDS_PER_REQUEST
    assert isolated.restarts == restarts + 1
    assert_service_answers(client, lab)  # on a fresh worker

    again = time.perf_counter()
    repeated = post(client, lab, endpoint, "smiles", text)
    assert repeated.status_code == 422
    assert reason in repeated.json()["errors"][0]["reason"]
    assert time.perf_counter() - again < ISOLATION_TIMEOUT  # remembered: no worker tied up
    assert isolated.restarts == restarts + 1


def test_a_worker_killed_between_requests_is_replaced_without_blaming_the_next_input(
    client: TestClient, lab: str, isolated: ChemistryPool
) -> None:
    """As when the kernel's OOM killer picks a worker: the next structure gets a fresh one and
    is analysed normally; nothing is counted against it."""
    restarts = isolated.restarts
    [worker] = [w for w in isolated._idle.queue if w is not None]
    worker.process.kill()
    worker.process.wait()
    assert_service_answers(client, lab)
    assert isolated.restarts == restarts


def test_a_real_rdkit_hang_is_stopped_by_the_time_limit(
    client: TestClient, lab: str, isolated: ChemistryPool
) -> None:
    """The graphene-oxide flake kept RDKit busy for 95 s before the ring limit existed; with
    the limit lifted in the worker, the time limit alone answers it."""
    restarts = isolated.restarts
    started = time.perf_counter()
    response = post(client, lab, "analyse", "smiles", GRAPHENE_OXIDE_FLAKE)
    elapsed = time.perf_counter() - started

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {
            "field": "body.smiles",
            "reason": f"structure could not be processed within {ISOLATION_TIMEOUT:g} s",
        }
    ]
    assert elapsed < ISOLATION_TIMEOUT + SECONDS_PER_REQUEST
    assert isolated.restarts == restarts + 1
    assert_service_answers(client, lab)


def test_with_the_limits_in_place_the_same_flake_is_refused_at_once(
    client: TestClient, lab: str
) -> None:
    started = time.perf_counter()
    response = post(client, lab, "analyse", "smiles", GRAPHENE_OXIDE_FLAKE)
    assert response.status_code == 422
    assert response.json()["errors"][0]["reason"] == f"structure has 55 rings (limit {MAX_RINGS})"
    assert time.perf_counter() - started < ISOLATION_TIMEOUT
