"""Console sign-in: password checks with lockout, server-side sessions, CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import utc_now
from app.deps import Principal
from app.models import User, WebSession
from app.models.enums import ApiRole, UserRole
from app.security import DUMMY_PASSWORD_HASH, verify_password
from app.settings import Settings

SESSION_COOKIE = "sentinel_session"
LOGIN_CSRF_COOKIE = "sentinel_login_csrf"
COOKIE_PATH = "/console"
# A working day, and an hour without a request: the usual bounds for an operations console
# (OWASP Session Management Cheat Sheet suggests 2-8 h absolute, 15-60 min idle for such use).
SESSION_LIFETIME = timedelta(hours=12)
IDLE_TIMEOUT = timedelta(hours=1)
_TOUCH_INTERVAL = timedelta(minutes=1)
PURGE_AFTER = timedelta(days=7)  # ended sessions are kept this long, then deleted at sign-in
# Five wrong passwords lock the account for 15 minutes (OWASP Authentication Cheat Sheet).
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
GENERIC_LOGIN_ERROR = (
    "Sign-in failed: the email or password is not right. After five failures in a row, "
    "sign-in is paused for 15 minutes."
)


class LoginRequiredError(Exception):
    """No valid console session: GET pages redirect to sign-in, POSTs are refused."""


class PageError(Exception):
    """A console page that cannot be shown: rendered as an HTML error page with `status`."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ConsoleForbiddenError(PageError):
    """A signed-in user may not do this, or the form's CSRF token is missing or wrong."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message, status)


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """The signed-in user of this request, with the principal used for audit and services."""

    principal: Principal
    email: str
    role: UserRole
    csrf_token: str
    session_id: int

    @property
    def is_admin(self) -> bool:
        return self.role is UserRole.ADMIN


class LoginResult(StrEnum):
    OK = "ok"
    UNKNOWN_USER = "unknown_user"
    BAD_PASSWORD = "bad_password"
    LOCKED = "locked"  # the account was already locked
    LOCKED_NOW = "locked_now"  # this failure locked it
    INACTIVE = "inactive"


def token_digest(token: str) -> str:
    """SHA-256 of a session token: tokens carry 256 random bits, so no salt or slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def principal_for(user: User) -> Principal:
    role = ApiRole.ADMIN if user.role is UserRole.ADMIN else ApiRole.OFFICER
    return Principal(
        actor=user.email,
        actor_type="user",
        role=role,
        organisation_id=user.organisation_id,
        user_id=user.id,
    )


def check_password(
    session: Session, email: str, password: str, *, now: datetime
) -> tuple[LoginResult, User | None]:
    """Check a password, counting failures and locking the account after MAX_FAILURES.

    The password is always verified, against DUMMY_PASSWORD_HASH for an unknown email and also
    for a locked or inactive account, so timing does not tell these cases apart; the caller
    shows one generic message for every failure.
    """
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        verify_password(password, DUMMY_PASSWORD_HASH)
        return LoginResult.UNKNOWN_USER, None
    matches = verify_password(password, user.password_hash)
    if user.locked_until is not None and user.locked_until > now:
        return LoginResult.LOCKED, user
    if not user.active:
        return LoginResult.INACTIVE, user
    if not matches:
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.failed_logins = 0
            user.locked_until = now + LOCKOUT
            return LoginResult.LOCKED_NOW, user
        return LoginResult.BAD_PASSWORD, user
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    return LoginResult.OK, user


def start_session(
    session: Session,
    user: User,
    *,
    now: datetime,
    address: str | None,
    previous_token: str | None = None,
) -> tuple[str, WebSession]:
    """A new session for `user`; returns the cookie token (only its hash is stored).

    A session the browser still held is ended (a fresh token at every sign-in: no fixation),
    and the user's sessions that ended over a week ago are deleted.
    """
    if previous_token:
        session.execute(
            update(WebSession)
            .where(
                WebSession.token_hash == token_digest(previous_token),
                WebSession.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
    session.execute(
        delete(WebSession).where(
            WebSession.user_id == user.id,
            or_(
                WebSession.expires_at < now - PURGE_AFTER, WebSession.revoked_at < now - PURGE_AFTER
            ),
        )
    )
    token = secrets.token_urlsafe(32)
    row = WebSession(
        token_hash=token_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_LIFETIME,
        client_address=address,
    )
    session.add(row)
    session.flush()
    return token, row


def end_session(session: Session, session_id: int, *, now: datetime) -> None:
    session.execute(
        update(WebSession)
        .where(WebSession.id == session_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def end_sessions_of(session: Session, user_id: int, *, now: datetime) -> None:
    """Sign a user out everywhere (after deactivation or a password change)."""
    session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def is_https(request: Request) -> bool:
    """Whether the browser talks https to us (X-Forwarded-Proto believed from trusted proxies)."""
    if request.url.scheme == "https":
        return True
    settings: Settings = request.app.state.settings
    trusted = {item.strip() for item in settings.trusted_proxies.split(",") if item.strip()}
    peer = request.client.host if request.client else None
    return peer in trusted and request.headers.get("x-forwarded-proto", "").lower() == "https"


def current_user(request: Request) -> ConsoleUser:
    """The console user of the session cookie. API keys are never looked at: a lab or
    subscriber key (or any key) cannot open the console."""
    cached: ConsoleUser | None = getattr(request.state, "console_user", None)
    if cached is not None:
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 100:
        raise LoginRequiredError
    now = utc_now()
    read_sessions: sessionmaker[Session] = request.app.state.read_sessions
    with read_sessions.begin() as session:
        found = session.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.token_hash == token_digest(token))
        ).first()
    if found is None:
        raise LoginRequiredError
    web_session, user = found[0], found[1]
    if (
        web_session.revoked_at is not None
        or web_session.expires_at <= now
        or web_session.last_seen_at <= now - IDLE_TIMEOUT
        or not user.active
    ):
        raise LoginRequiredError
    if now - web_session.last_seen_at > _TOUCH_INTERVAL:
        sessions: sessionmaker[Session] = request.app.state.sessions
        with sessions.begin() as session:
            session.execute(
                update(WebSession).where(WebSession.id == web_session.id).values(last_seen_at=now)
            )
    console_user = ConsoleUser(
        principal=principal_for(user),
        email=user.email,
        role=user.role,
        csrf_token=web_session.csrf_token,
        session_id=web_session.id,
    )
    request.state.console_user = console_user
    return console_user


def _same_origin(request: Request) -> bool:
    """Defence in depth for CSRF, beside the token: a browser that says where a request comes
    from must say it comes from this site. Sec-Fetch-Site is sent by current browsers; Origin is
    "null" under our Referrer-Policy: no-referrer, so it is only compared when it names a site.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return origin.split("://", 1)[-1] == request.headers.get("host", "")


async def _form_token(request: Request) -> str:
    form = await request.form()
    value = form.get("csrf_token")
    return value if isinstance(value, str) else ""


async def checked_user(
    request: Request, user: Annotated[ConsoleUser, Depends(current_user)]
) -> ConsoleUser:
    """The user of a POST form whose CSRF token matches the session's (constant-time)."""
    token = await _form_token(request)
    if not _same_origin(request) or not hmac.compare_digest(
        token.encode(), user.csrf_token.encode()
    ):
        raise ConsoleForbiddenError(
            "This form has expired or did not come from the console (missing or wrong CSRF "
            "token). Go back, reload the page and try again."
        )
    return user


def admin_only(user: ConsoleUser) -> ConsoleUser:
    if not user.is_admin:
        raise ConsoleForbiddenError("This page is for administrators only.")
    return user


def admin_user(user: Annotated[ConsoleUser, Depends(current_user)]) -> ConsoleUser:
    return admin_only(user)


async def checked_admin(user: Annotated[ConsoleUser, Depends(checked_user)]) -> ConsoleUser:
    return admin_only(user)


CurrentUser = Annotated[ConsoleUser, Depends(current_user)]
CheckedUser = Annotated[ConsoleUser, Depends(checked_user)]
AdminUser = Annotated[ConsoleUser, Depends(admin_user)]
CheckedAdmin = Annotated[ConsoleUser, Depends(checked_admin)]


# ---- CSRF before sign-in: a signed double-submit cookie ------------------------------------


def _login_token(settings: Settings, nonce: str) -> str:
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, b"console-login:" + nonce.encode(), hashlib.sha256).hexdigest()


def login_csrf(request: Request) -> tuple[str, str]:
    """The (cookie nonce, form token) pair for the sign-in form; reuses the browser's nonce."""
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not (20 <= len(nonce) <= 100):
        nonce = secrets.token_urlsafe(32)
    return nonce, _login_token(request.app.state.settings, nonce)


async def check_login_csrf(request: Request) -> None:
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    token = await _form_token(request)
    expected = _login_token(request.app.state.settings, nonce)
    if (
        not nonce
        or not _same_origin(request)
        or not hmac.compare_digest(token.encode(), expected.encode())
    ):
        raise ConsoleForbiddenError(
            "The sign-in form has expired (missing or wrong CSRF token). Reload it and try again."
        )
