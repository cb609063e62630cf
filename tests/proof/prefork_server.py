"""A pre-forking writer for the crash proof: `python -m tests.proof.prefork_server PORT`.

It imports and builds the application once (create_app from the SENTINEL_* environment, with
the reference catalogue loaded), closes its database connections, and then forks a server
process (uvicorn on 127.0.0.1:PORT) and forks a new one whenever that one dies, printing each
server's pid on stdout. This is how `gunicorn --preload` runs a FastAPI application; here it
lets the test SIGKILL 25 writers in seconds, where each cold `sentinel serve` takes several
seconds to import RDKit and scikit-learn. Each server opens its own connections after the fork
(SQLAlchemy's `engine.dispose(close=False)`), so killing one is a real crash of a writer.
Chemistry must run inline (SENTINEL_CHEMISTRY_ISOLATION=inline): the worker processes of a
chemistry pool started before the fork would be shared by every forked server in turn.
"""

from __future__ import annotations

import os
import sys

import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings


def _warm(app: FastAPI) -> None:
    """Build the reference catalogue now, so that each forked server starts ready."""
    with app.state.read_sessions() as session:
        app.state.enricher.catalogue.analyser(session)


def _serve(app: FastAPI, port: int) -> None:
    try:
        app.state.engine.dispose(close=False)  # never touch the parent's connections
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    finally:
        os._exit(0)


def main() -> None:
    port = int(sys.argv[1])
    settings = Settings()
    if settings.chemistry_isolation != "inline":
        sys.exit("set SENTINEL_CHEMISTRY_ISOLATION=inline: chemistry workers cannot be forked")
    app = create_app(settings)
    _warm(app)
    app.state.engine.dispose()  # no open connection may cross the fork
    while True:
        pid = os.fork()
        if pid == 0:
            _serve(app, port)
        print(pid, flush=True)  # BrokenPipeError ends us when the test has gone
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            return  # shut down on purpose (SIGINT/SIGTERM), not crashed


if __name__ == "__main__":
    main()
