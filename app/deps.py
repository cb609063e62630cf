"""Request dependencies: sessions, the authenticated principal, roles and rate limits."""

from __future__ import annotations

import dataclasses
import ipaddress
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import utc_now
from app.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from app.models import ApiKey
from app.models.enums import ApiRole
from app.security import api_key_matches, split_api_key
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key (of an organisation, with a role) or a console user."""

    actor: str  # key prefix or user email
    actor_type: str  # "api_key" or "user"
    role: ApiRole
    organisation_id: int | None
    key_id: int | None = None
    user_id: int | None = None

    @property
    def sees_all_detections(self) -> bool:
        return self.role in (ApiRole.OFFICER, ApiRole.ADMIN)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request: committed if the route returns, rolled back if it raises."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions.begin() as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    """A session for routes that only read (no write lock on SQLite)."""
    sessions: sessionmaker[Session] = request.app.state.read_sessions
    with sessions.begin() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": commit before the response is sent, so a failed commit is an error response.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


def client_address(request: Request) -> str | None:
    """The client's address; X-Forwarded-For is believed only from configured proxies."""
    peer = request.client.host if request.client else None
    settings: Settings = request.app.state.settings
    trusted = {item.strip() for item in settings.trusted_proxies.split(",") if item.strip()}
    forwarded = request.headers.get("x-forwarded-for")
    if peer in trusted and forwarded:
        candidate = forwarded.split(",")[0].strip()
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            return peer
    return peer


# Declared as security schemes so that the OpenAPI document says which operations need a key.
# auto_error=False: a missing or malformed key is our 401 problem+json, not FastAPI's 403.
_BEARER = HTTPBearer(auto_error=False, description="an API key: 'Authorization: Bearer snt_...'")
_API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key, for clients that cannot set Bearer"
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
ApiKeyHeaderDep = Annotated[str | None, Depends(_API_KEY_HEADER)]


def _presented_key(bearer: HTTPAuthorizationCredentials | None, header: str | None) -> str | None:
    if bearer is not None and bearer.credentials.strip():
        return bearer.credentials.strip()
    return header.strip() if header and header.strip() else None


_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class _KnownKey:
    id: int
    prefix: str
    key_hash: str
    role: ApiRole
    organisation_id: int | None
    revoked: bool
    last_used_at: datetime | None


class KeyCache:
    """API keys read from the database, trusted for `ttl` seconds (0: read on every request).

    Saves a database round trip per request. A key revoked through this process's console is
    forgotten when the revocation commits; one revoked elsewhere (another API process, the CLI)
    is refused by this one within `ttl` seconds (SENTINEL_API_KEY_CACHE_SECONDS). Unknown keys
    are never cached, so guessing fills nothing; the cache holds hashes, never keys.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, _KnownKey]] = {}
        self._lock = threading.Lock()

    def get(self, prefix: str) -> _KnownKey | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            entry = self._entries.get(prefix)
        if entry is None or self.clock() - entry[0] > self.ttl:
            return None
        return entry[1]

    def put(self, key: _KnownKey) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= 10_000:
                self._entries.clear()
            self._entries[key.prefix] = (self.clock(), key)

    def forget(self, prefix: str) -> None:
        with self._lock:
            self._entries.pop(prefix, None)


def _read_key(request: Request, prefix: str) -> _KnownKey | None:
    read_sessions: sessionmaker[Session] = request.app.state.read_sessions
    with read_sessions.begin() as session:
        # Columns, not the ORM entity: this runs on most requests.
        row = session.execute(
            select(
                ApiKey.id,
                ApiKey.prefix,
                ApiKey.key_hash,
                ApiKey.role,
                ApiKey.organisation_id,
                ApiKey.revoked_at,
                ApiKey.last_used_at,
            ).where(ApiKey.prefix == prefix)
        ).one_or_none()
    if row is None:
        return None
    return _KnownKey(
        row.id,
        row.prefix,
        row.key_hash,
        row.role,
        row.organisation_id,
        row.revoked_at is not None,
        row.last_used_at,
    )


def authenticate(request: Request, bearer: BearerDep, header: ApiKeyHeaderDep) -> Principal:
    """Resolve the API key (Authorization: Bearer, or X-API-Key) into a principal."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    presented = _presented_key(bearer, header)
    if presented is None:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    prefix = split_api_key(presented)
    if prefix is None:
        raise AuthenticationError("malformed API key")
    keys: KeyCache = request.app.state.key_cache
    key = keys.get(prefix)
    if key is None:
        key = _read_key(request, prefix)
        if key is not None:
            keys.put(key)
    if key is None or not api_key_matches(presented, key.key_hash):
        raise AuthenticationError("unknown API key")
    if key.revoked:
        raise AuthenticationError("API key has been revoked")
    retry_after = request.app.state.rate_limiter.acquire(prefix)
    if retry_after:
        raise RateLimitedError(f"rate limit exceeded for key {prefix}", retry_after=retry_after)
    now = utc_now()
    if key.last_used_at is None or now - key.last_used_at > _TOUCH_INTERVAL:
        sessions: sessionmaker[Session] = request.app.state.sessions
        with sessions.begin() as session:
            session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        keys.put(dataclasses.replace(key, last_used_at=now))
    principal = Principal(
        actor=key.prefix,
        actor_type="api_key",
        role=key.role,
        organisation_id=key.organisation_id,
        key_id=key.id,
    )
    request.state.principal = principal
    return principal


AuthenticatedDep = Annotated[Principal, Depends(authenticate)]


def require(*roles: ApiRole) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits only the given roles (admins are always admitted).

    The roles are the security scopes of the key check, so the OpenAPI document lists them in
    each operation's security requirement (OpenAPI 3.1 allows role names there).
    """
    allowed = {*roles, ApiRole.ADMIN}
    names = sorted(role.value for role in allowed)

    # async: a check without I/O runs on the event loop, sparing a hop to the thread pool.
    async def check(principal: Principal = Security(authenticate, scopes=names)) -> Principal:
        if principal.role not in allowed:
            raise PermissionDeniedError(
                f"role {principal.role.value!r} may not do this (allowed: {', '.join(names)})"
            )
        return principal

    return check


LabKey = Annotated[Principal, Depends(require(ApiRole.LAB))]
DetectionReader = Annotated[Principal, Depends(require(ApiRole.LAB, ApiRole.OFFICER))]
CurrentOfficer = Annotated[Principal, Depends(require(ApiRole.OFFICER))]
AdminDep = Annotated[Principal, Depends(require())]
# Structure analysis and the reference library: for labs and officers, not for subscribers, who
# receive alerts and nothing else (ARCHITECTURE.md: who uses it).
AnalysisUser = Annotated[Principal, Depends(require(ApiRole.LAB, ApiRole.OFFICER))]
AlertReader = Annotated[Principal, Depends(require(ApiRole.OFFICER, ApiRole.SUBSCRIBER))]
