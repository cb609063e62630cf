"""A chemistry worker process: `python -m app.chemistry_worker READ_FD WRITE_FD LIMIT ANALYSE`.

Started by app/chemistry_pool.py. It limits its own address space, then loads the Analysers it
is sent and analyses structures with ANALYSE ("module:function"), one at a time, until the pipe
from the service closes.
"""

from __future__ import annotations

import importlib
import pickle
import resource
import signal
import sys
from collections import OrderedDict
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from chemistry.analysis import Analyser, Analysis
from chemistry.errors import InvalidStructureError

Analyse = Callable[[Analyser, str, str], Analysis]


class Duplex:
    """Two one-way pipe ends used as one connection."""

    def __init__(self, reader: Connection, writer: Connection) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, obj: object) -> None:
        self.writer.send(obj)

    def recv(self) -> Any:
        return self.reader.recv()

    def poll(self, timeout: float) -> bool:
        return self.reader.poll(timeout)

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


def serve(connection: Duplex, analyse: Analyse) -> None:
    """Load Analysers and analyse structures until the service goes away."""
    analysers: OrderedDict[int, Analyser] = OrderedDict()
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return  # the service closed the pipe or died
        if message[0] == "load":
            _, key, payload = message
            analysers[key] = pickle.loads(payload)
            while len(analysers) > 2:
                analysers.popitem(last=False)
            connection.send(("loaded", key))
            continue
        _, key, text, fmt = message
        try:
            connection.send(("ok", analyse(analysers[key], text, fmt)))
        except InvalidStructureError as error:
            connection.send(("invalid", error.reason))
        except MemoryError:
            connection.send(("memory", ""))
            return  # a C++ library that ran out of memory may be left inconsistent


def main(argv: list[str]) -> None:
    read_fd, write_fd, memory_limit, analyse = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the service to handle
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    module, _, name = analyse.partition(":")
    function: Analyse = getattr(importlib.import_module(module), name)
    serve(
        Duplex(Connection(read_fd, writable=False), Connection(write_fd, readable=False)),
        function,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
