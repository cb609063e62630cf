"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from app import openapi, problems
from app.chemistry_pool import chemistry_for
from app.db import make_engine, make_sessionmaker
from app.deps import KeyCache
from app.detections.routes import router as detections_router
from app.enrichment import Enricher
from app.health import router as health_router
from app.middleware import BodySizeLimitMiddleware, SecurityHeadersMiddleware
from app.migrate import script_heads
from app.ratelimit import RateLimiter
from app.settings import Settings
from app.subscriptions.routes import router as subscriptions_router
from app.substances.routes import router as substances_router
from app.triage.cap import router as cap_router
from app.triage.routes import router as triage_router
from app.web import install as install_console


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the service for `settings` (read from the environment when not given).

    `engine` lets a caller (tests, the demo) share one engine between several apps.
    """
    settings = settings or Settings()
    logging.basicConfig(level=settings.log_level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # webhook URLs may carry credentials

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = None
        if settings.run_scheduler:
            from app.jobs import JobContext
            from app.scheduler import SchedulerService

            service = SchedulerService(JobContext(app.state.sessions, settings), app.state.engine)
            service.start()
        app.state.scheduler = service
        try:
            yield
        finally:
            if service is not None:
                service.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Sentinel-NPS",
        version="0.1.0",
        description="Early warning system for new psychoactive substances.",
    )
    engine = engine or make_engine(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.read_sessions = make_sessionmaker(engine, read_only=True)
    app.state.migration_heads = script_heads()
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    app.state.key_cache = KeyCache(settings.api_key_cache_seconds)
    app.state.enricher = Enricher(chemistry=chemistry_for(settings.chemistry_isolation))

    problems.install(app)
    openapi.install(app)
    app.include_router(health_router)
    app.include_router(detections_router)
    app.include_router(triage_router)
    app.include_router(cap_router)
    app.include_router(subscriptions_router)
    app.include_router(substances_router)
    install_console(app)  # the web console: /console pages and /console/static files
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
