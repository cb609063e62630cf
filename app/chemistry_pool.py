"""Where the chemistry of untrusted structures runs: inline, or in worker processes with limits.

RDKit is C++ and holds the GIL while it works: an input that makes it loop for a minute (see
MAX_RINGS in chemistry/structures.py) freezes every thread of the service, health checks
included, and one that makes it crash takes the whole process down. With process isolation
(SENTINEL_CHEMISTRY_ISOLATION=process, the default) each structure is analysed by a worker
process under a time limit (a worker still busy when it expires is killed and replaced) and an
address-space limit (RLIMIT_AS), so a hostile structure costs one worker at most `timeout`
seconds and gets a 422 naming the field, while the service stays up. Inputs that timed out or
crashed a worker are remembered, so sending one again costs nothing.

The price, measured on the NPS-FACL sample on a shared 2-core machine: about 0.05 ms per round
trip plus 0.2 ms to pickle the Analysis back (median 8.0 ms against 7.1 ms inline per structure
not already in the Enricher's cache), and 160 MB resident per worker. Workers are fresh
interpreters (`python -m app.chemistry_worker`), not forks of the service: a fork of a threaded
server can inherit locks held by other threads, and multiprocessing's spawn and forkserver re-run
the host's main script. Starting one takes about a second of CPU (importing RDKit), done in the
background when the pool is created; the Analyser is sent pickled, once per reference library.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Literal, Protocol

from app.chemistry_worker import Duplex
from chemistry.analysis import Analyser, Analysis
from chemistry.errors import InvalidStructureError

logger = logging.getLogger("sentinel.chemistry")

Isolation = Literal["process", "inline"]

# Per-structure time limit. A legitimate structure at the input limits takes under 0.2 s
# (chemistry/structures.py); 5 s leaves room for a loaded machine.
TIMEOUT_SECONDS = 5.0
# Address space of one worker. A worker holding RDKit, numpy and the Analyser maps about 340 MB
# (160 MB resident); the whole hostile corpus (tests/chemistry/hostile.py) adds under 5 MB.
# 1 GiB leaves ample room for any structure within the input limits and stops a runaway.
MEMORY_LIMIT_BYTES = 1 << 30
WORKERS = max(1, min(4, os.cpu_count() or 1))
LOAD_TIMEOUT_SECONDS = 120.0  # unpickling the Analyser: ~0.3 s, far more on a loaded machine
REMEMBERED_FAILURES = 4096

Analyse = Callable[[Analyser, str, str], Analysis]
DEFAULT_ANALYSE = "app.chemistry_pool:analyse_guarded"  # module:function, imported by workers


class Chemistry(Protocol):
    """Analyses one untrusted structure; raises InvalidStructureError with the reason."""

    def analyse(self, analyser: Analyser, text: str, fmt: str) -> Analysis: ...


def analyse_guarded(analyser: Analyser, text: str, fmt: str) -> Analysis:
    """Analyser.analyse_or_raise, with any other error RDKit raises for the input (its C++
    invariants surface as RuntimeError or ValueError) reported as an invalid structure."""
    try:
        return analyser.analyse_or_raise(text, fmt)
    except InvalidStructureError:
        raise
    except (RuntimeError, ValueError) as error:
        logger.warning("RDKit failed on a %s input: %r", fmt, error)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidStructureError(
            text, reason=f"structure could not be processed: {first}"
        ) from error


class InlineChemistry:
    """Runs the chemistry in the calling thread: no overhead, no protection."""

    def __init__(self, analyse: Analyse = analyse_guarded) -> None:
        self._analyse = analyse

    def analyse(self, analyser: Analyser, text: str, fmt: str) -> Analysis:
        return self._analyse(analyser, text, fmt)

    def close(self) -> None:
        pass


class _Worker:
    def __init__(self, process: subprocess.Popen[bytes], connection: Duplex) -> None:
        self.process = process
        self.connection = connection
        self.loaded: set[int] = set()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.error("chemistry worker %d did not exit after SIGKILL", self.process.pid)
        self.connection.close()


class ChemistryPool:
    """Worker processes that analyse structures under a time and an address-space limit.

    Thread-safe: each call takes an idle worker (waiting for one if all are busy), sends the
    structure and waits at most `timeout` seconds. A worker that times out or dies is replaced
    by a fresh one for the next call. Workers start lazily; each exits when its pipe from the
    service closes (also when the service dies), and `close` stops them.
    """

    def __init__(
        self,
        *,
        workers: int = WORKERS,
        timeout: float = TIMEOUT_SECONDS,
        memory_limit: int = MEMORY_LIMIT_BYTES,
        analyse: str = DEFAULT_ANALYSE,
    ) -> None:
        self.workers = workers
        self.timeout = timeout
        self.memory_limit = memory_limit
        self._analyse = analyse  # "module:function", imported by each worker
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(workers):
            self._idle.put(None)  # a slot: a worker is started on first use
        self._lock = threading.Lock()
        self._payloads: OrderedDict[int, tuple[Analyser, bytes]] = OrderedDict()
        self._failures: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.restarts = 0  # workers replaced after a timeout or a crash (for tests and logs)

    # -- public --

    def analyse(self, analyser: Analyser, text: str, fmt: str) -> Analysis:
        remembered = self._remembered(fmt, text)
        if remembered is not None:
            raise InvalidStructureError(text, reason=remembered)
        key, payload = self._payload(analyser)
        worker = self._idle.get()
        in_flight = False
        try:
            worker = self._ready(worker, key, payload)
            try:
                worker.connection.send(("analyse", key, text, fmt))
            except OSError:  # it died before the input reached it: not the input's doing
                worker.stop()
                worker = self._ready(None, key, payload)
                worker.connection.send(("analyse", key, text, fmt))
            in_flight = True
            answered = worker.connection.poll(self.timeout)
            try:
                reply = worker.connection.recv() if answered else None
            except (EOFError, OSError):
                reply = None
            in_flight = False
            if reply is None:
                if answered:
                    exit_code = self._exit_code(worker)
                    reason = f"structure could not be processed: the chemistry worker {exit_code}"
                else:
                    reason = f"structure could not be processed within {self.timeout:g} s"
                worker = self._replace(worker, reason, fmt, text)
                raise InvalidStructureError(text, reason=reason)
            outcome, value = reply
            if outcome == "memory":
                reason = (
                    "structure could not be processed within the memory limit "
                    f"({self.memory_limit >> 20} MiB)"
                )
                worker = self._replace(worker, reason, fmt, text)
                raise InvalidStructureError(text, reason=reason)
            if outcome == "invalid":
                raise InvalidStructureError(text, reason=str(value))
            assert outcome == "ok"
            assert isinstance(value, Analysis)
            return value
        finally:
            if in_flight and worker is not None:  # interrupted mid-request: its answer is stale
                worker.stop()
            self._idle.put(worker)

    def prestart(self) -> None:
        """Start the workers in the background, so the first structures need not wait for
        RDKit to be imported (about a second per worker)."""
        threading.Thread(target=self._prestart, name="chemistry-prestart", daemon=True).start()

    def close(self) -> None:
        """Stop the idle workers; the pool starts new ones if it is used again."""
        stopped = 0
        while stopped < self.workers:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            stopped += 1
            if worker is not None:
                worker.stop()
        for _ in range(stopped):
            self._idle.put(None)

    # -- internals --

    def _prestart(self) -> None:
        taken: list[_Worker | None] = []
        try:
            for _ in range(self.workers):
                worker = self._idle.get()
                taken.append(worker)
                if worker is None or not worker.alive():
                    taken[-1] = self._start()
        except OSError:
            logger.exception("could not start a chemistry worker")
        finally:
            for worker in taken:
                self._idle.put(worker)

    def _start(self) -> _Worker:
        to_child_read, to_child_write = os.pipe()
        to_parent_read, to_parent_write = os.pipe()
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
            # One BLAS thread: a worker does no linear algebra worth threads, and each thread
            # reserves address space that would count against the memory limit.
            OPENBLAS_NUM_THREADS="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.chemistry_worker",
                    str(to_child_read),
                    str(to_parent_write),
                    str(self.memory_limit),
                    self._analyse,
                ],
                pass_fds=(to_child_read, to_parent_write),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            os.close(to_child_read)
            os.close(to_parent_write)
        connection = Duplex(
            Connection(to_parent_read, writable=False), Connection(to_child_write, readable=False)
        )
        return _Worker(process, connection)

    def _ready(self, worker: _Worker | None, key: int, payload: bytes) -> _Worker:
        """A live worker with the Analyser loaded: the one given, or a fresh one."""
        if worker is not None and worker.alive() and key in worker.loaded:
            return worker
        if worker is None or not worker.alive():
            if worker is not None:
                worker.stop()
            worker = self._start()
        try:
            self._load(worker, key, payload)
        except BaseException:
            worker.stop()
            raise
        return worker

    def _load(self, worker: _Worker, key: int, payload: bytes) -> None:
        worker.connection.send(("load", key, payload))
        if not worker.connection.poll(LOAD_TIMEOUT_SECONDS):
            raise TimeoutError("a chemistry worker did not load the Analyser in time")
        reply = worker.connection.recv()
        assert reply == ("loaded", key)
        worker.loaded.add(key)

    def _payload(self, analyser: Analyser) -> tuple[int, bytes]:
        """The pickled Analyser, keyed by identity; the objects are held so ids stay unique."""
        key = id(analyser)
        with self._lock:
            found = self._payloads.get(key)
            if found is None or found[0] is not analyser:
                found = (analyser, pickle.dumps(analyser, protocol=pickle.HIGHEST_PROTOCOL))
                self._payloads[key] = found
                while len(self._payloads) > 2:
                    self._payloads.popitem(last=False)
            return key, found[1]

    def _replace(self, worker: _Worker, reason: str, fmt: str, text: str) -> _Worker | None:
        """Stop a worker that failed on `text`, remember the failure, and start its successor
        (it imports RDKit while the failure is answered)."""
        shown = text if len(text) <= 80 else text[:77] + "..."
        logger.warning("%s (%s %r); replacing the chemistry worker", reason, fmt, shown)
        worker.stop()
        with self._lock:
            self.restarts += 1
            self._failures[(fmt, text)] = reason
            while len(self._failures) > REMEMBERED_FAILURES:
                self._failures.popitem(last=False)
        try:
            return self._start()
        except OSError:
            logger.exception("could not start a chemistry worker")
            return None

    @staticmethod
    def _exit_code(worker: _Worker) -> str:
        try:
            code = worker.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def _remembered(self, fmt: str, text: str) -> str | None:
        with self._lock:
            return self._failures.get((fmt, text))


_SHARED: dict[str, Chemistry] = {}
_SHARED_LOCK = threading.Lock()


def chemistry_for(isolation: Isolation) -> Chemistry:
    """The process-wide Chemistry for an isolation mode: every app in a process shares one pool
    (as the apps share one Analyser per reference library)."""
    with _SHARED_LOCK:
        found = _SHARED.get(isolation)
        if found is None:
            if isolation == "process":
                pool = ChemistryPool()
                pool.prestart()
                atexit.register(pool.close)
                found = pool
            else:
                found = InlineChemistry()
            _SHARED[isolation] = found
        return found
