"""Console sign-in and sign-out: the form, lockout and throttling, the session cookie."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from app import audit
from app.db import utc_now
from app.deps import SessionDep, client_address
from app.web.auth import (
    COOKIE_PATH,
    GENERIC_LOGIN_ERROR,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    CheckedUser,
    ConsoleUser,
    LoginRequiredError,
    LoginResult,
    check_login_csrf,
    check_password,
    current_user,
    end_session,
    is_https,
    login_csrf,
    principal_for,
    start_session,
)
from app.web.templating import render

router = APIRouter(prefix="/console", include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only console paths of this site: no scheme, no host, no '//' or backslash tricks."""
    if (
        target
        and target.startswith("/console/")
        and not any(bad in target for bad in ("//", "\\", "\n", "\r"))
    ):
        return target
    return "/console/alerts"


def _optional_user(request: Request) -> ConsoleUser | None:
    try:
        return current_user(request)
    except LoginRequiredError:
        return None


@router.get("")
@router.get("/")
def console_home() -> RedirectResponse:
    return RedirectResponse("/console/alerts", status_code=303)


def _login_page(
    request: Request, *, next_path: str, error: str | None = None, notice: str | None = None
) -> Response:
    nonce, token = login_csrf(request)
    response = render(
        request,
        "login.html",
        {"login_token": token, "next": next_path, "error": error, "notice": notice},
        user=None,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        nonce,
        max_age=2 * 3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None, signed_out: int = 0) -> Response:
    if _optional_user(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    notice = "You are signed out." if signed_out else None
    return _login_page(request, next_path=_safe_next(next), notice=notice)


@router.post("/login", dependencies=[Depends(check_login_csrf)])
def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    address = client_address(request)
    limiter = request.app.state.console_login_limiter
    if limiter.acquire(f"login:{address}"):
        audit.record(
            session,
            None,
            "console.login_throttled",
            "user",
            None,
            client_address=address,
            detail={"typed": _typed_fingerprint(email)},
            actor="anonymous",
        )
        response = _login_page(
            request,
            next_path=_safe_next(next),
            error="Too many sign-in attempts from your address: wait a minute and try again.",
        )
        response.status_code = 429
        return response
    now = utc_now()
    result, user = check_password(session, email, password, now=now)
    if result is not LoginResult.OK or user is None:
        audit.record(
            session,
            None,
            "console.login_failed",
            "user",
            user.id if user else None,
            client_address=address,
            detail=(
                {"email": user.email, "reason": result.value}
                if user is not None
                else {"typed": _typed_fingerprint(email), "reason": result.value}
            ),
            actor="anonymous",
        )
        if result is LoginResult.LOCKED_NOW and user is not None:
            audit.record(
                session,
                None,
                "user.locked",
                "user",
                user.id,
                client_address=address,
                detail={"until": user.locked_until.isoformat() if user.locked_until else None},
                actor="system",
            )
        return _login_page(request, next_path=_safe_next(next), error=GENERIC_LOGIN_ERROR)
    token, web_session = start_session(
        session,
        user,
        now=now,
        address=address,
        previous_token=request.cookies.get(SESSION_COOKIE),
    )
    audit.record(
        session,
        principal_for(user),
        "console.login",
        "user",
        user.id,
        client_address=address,
        detail={"session": web_session.id},
    )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, user: CheckedUser) -> Response:
    end_session(session, user.session_id, now=utc_now())
    audit.record(
        session,
        user.principal,
        "console.logout",
        "user",
        user.principal.user_id,
        client_address=client_address(request),
    )
    response = RedirectResponse("/console/login?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax")
    return response


def _typed_fingerprint(text: str) -> str:
    """What the audit trail keeps of a sign-in name that is no account's: a short fingerprint,
    enough to see repeated attempts with the same text, never the text (people type passwords
    into the wrong field)."""
    digest = hashlib.sha256(text.strip().lower().encode()).hexdigest()
    return f"sha256:{digest[:16]}"
