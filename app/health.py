"""Liveness and readiness probes (the only API routes without authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from app.migrate import database_heads
from app.problems import problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=None,
    responses={503: {"description": "the database is unreachable or not at the schema head"}},
)
def readyz(request: Request) -> dict[str, str] | JSONResponse:
    """The database answers and its schema is at the migrations' head."""
    engine: Engine = request.app.state.engine
    expected: set[str] = request.app.state.migration_heads
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = database_heads(connection)
    except Exception as error:  # any failure to reach the database means not ready
        return problem(503, "Service Unavailable", f"database unreachable: {type(error).__name__}")
    if current != expected:
        return problem(
            503,
            "Service Unavailable",
            f"database schema at {sorted(current) or 'none'}, expected {sorted(expected)}: "
            "run 'sentinel db upgrade'",
        )
    return {"status": "ready", "schema": ",".join(sorted(current))}
