"""Console sign-in: sessions, lockout, logout, CSRF, and who may open what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import utc_now
from app.models import ApiKey, AuditLog, User, WebSession
from app.ratelimit import RateLimiter
from app.web.auth import GENERIC_LOGIN_ERROR, MAX_FAILURES, SESSION_COOKIE
from tests.conftest import auth
from tests.web.conftest import csrf_of, form_token, sign_in
from tests.web.scenario import PASSWORD


def audit_actions(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with sessions.begin() as session:
        return [
            (row.action, row.actor, row.actor_type)
            for row in session.scalars(select(AuditLog).order_by(AuditLog.id))
        ]


def test_signing_in_opens_the_queue_with_an_http_only_session_cookie(
    client: TestClient, users: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    response = sign_in(client, users["officer"])

    assert response.status_code == 303
    assert response.headers["location"] == "/console/alerts"
    cookie = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    page = client.get("/console/alerts")
    assert page.status_code == 200
    assert "Alert queue" in page.text
    assert ("console.login", users["officer"], "user") in audit_actions(sessions)
    with sessions.begin() as session:
        stored = session.scalar(select(WebSession))
        assert stored is not None
        assert stored.token_hash != client.cookies.get(SESSION_COOKIE)  # only a hash is kept


def test_the_session_cookie_is_secure_over_https(app: Any, users: dict[str, str]) -> None:
    with TestClient(app, base_url="https://testserver") as client:
        response = sign_in(client, users["officer"])
    assert response.status_code == 303
    cookies = [v for n, v in response.headers.multi_items() if n == "set-cookie"]
    assert any(c.startswith(SESSION_COOKIE) and "Secure" in c for c in cookies)


def test_a_wrong_password_and_an_unknown_email_get_the_same_generic_answer(
    client: TestClient, users: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    wrong = sign_in(client, users["officer"], "not the password")
    unknown = sign_in(client, "nobody@ews.example.org", PASSWORD)

    for response in (wrong, unknown):
        assert response.status_code == 200
        assert GENERIC_LOGIN_ERROR in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert client.get("/console/alerts", follow_redirects=False).status_code == 303
    with sessions.begin() as session:
        officer = session.scalar(select(User).where(User.email == users["officer"]))
        assert officer is not None
        assert officer.failed_logins == 1
    failed = [a for a in audit_actions(sessions) if a[0] == "console.login_failed"]
    assert len(failed) == 2


def test_a_failed_sign_in_keeps_no_text_that_is_not_an_account(
    client: TestClient, users: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    """People type passwords into the email field: such text must not reach the audit trail."""
    sign_in(client, "my-secret-passphrase-42", PASSWORD)
    sign_in(client, users["officer"], "not the password")
    with sessions.begin() as session:
        details = [
            row.detail
            for row in session.scalars(
                select(AuditLog).where(AuditLog.action == "console.login_failed")
            )
        ]
    assert "my-secret-passphrase-42" not in str(details)
    unknown, known = details
    assert unknown["typed"].startswith("sha256:")
    assert known["email"] == users["officer"]


def test_five_failures_lock_the_account_for_a_while(
    client: TestClient, users: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    for _ in range(MAX_FAILURES):
        assert GENERIC_LOGIN_ERROR in sign_in(client, users["officer"], "guess").text

    locked = sign_in(client, users["officer"], PASSWORD)  # the right password, but locked

    assert locked.status_code == 200
    assert GENERIC_LOGIN_ERROR in locked.text
    with sessions.begin() as session:
        officer = session.scalar(select(User).where(User.email == users["officer"]))
        assert officer is not None
        assert officer.locked_until is not None
        assert officer.locked_until > utc_now() + timedelta(minutes=14)
        officer.locked_until = utc_now() - timedelta(seconds=1)  # the lock runs out
    assert "user.locked" in [a[0] for a in audit_actions(sessions)]
    assert sign_in(client, users["officer"], PASSWORD).status_code == 303


def test_logging_out_invalidates_the_session(
    officer_client: TestClient, sessions: sessionmaker[Session]
) -> None:
    token = officer_client.cookies.get(SESSION_COOKIE)
    assert token

    response = officer_client.post(
        "/console/logout", data={"csrf_token": csrf_of(officer_client)}, follow_redirects=False
    )

    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login")
    officer_client.cookies.set(SESSION_COOKIE, token, path="/console")  # replay the old cookie
    again = officer_client.get("/console/alerts", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/console/login")
    with sessions.begin() as session:
        stored = session.scalar(select(WebSession))
        assert stored is not None
        assert stored.revoked_at is not None


def test_an_expired_or_idle_session_is_refused(
    officer_client: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        session.execute(update(WebSession).values(last_seen_at=utc_now() - timedelta(hours=2)))
    assert officer_client.get("/console/alerts", follow_redirects=False).status_code == 303


def test_deactivating_a_user_ends_their_sessions(
    officer_client: TestClient, users: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        session.execute(update(User).where(User.email == users["officer"]).values(active=False))
    assert officer_client.get("/console/alerts", follow_redirects=False).status_code == 303
    assert GENERIC_LOGIN_ERROR in sign_in(officer_client, users["officer"]).text


@pytest.mark.parametrize(
    "path",
    ["/console/logout", "/console/alerts/1/acknowledge", "/console/admin/keys"],
)
def test_a_post_without_a_valid_csrf_token_is_refused(admin_client: TestClient, path: str) -> None:
    missing = admin_client.post(path, data={"note": "x"}, follow_redirects=False)
    wrong = admin_client.post(
        path, data={"note": "x", "csrf_token": "forged-token"}, follow_redirects=False
    )

    for response in (missing, wrong):
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert admin_client.get("/console/alerts").status_code == 200  # still signed in


def test_a_post_from_another_origin_is_refused_even_with_the_token(
    officer_client: TestClient,
) -> None:
    response = officer_client.post(
        "/console/logout",
        data={"csrf_token": csrf_of(officer_client)},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 403


def test_the_sign_in_form_itself_needs_its_csrf_token(
    client: TestClient, users: dict[str, str]
) -> None:
    response = client.post(
        "/console/login",
        data={"email": users["officer"], "password": PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 403
    page = client.get("/console/login")
    forged = client.post(
        "/console/login",
        data={
            "csrf_token": form_token(page.text) + "x",
            "email": users["officer"],
            "password": PASSWORD,
        },
        follow_redirects=False,
    )
    assert forged.status_code == 403


@pytest.mark.parametrize("role", ["lab_a", "subscriber", "officer", "admin"])
def test_an_api_key_cannot_open_the_console(
    client: TestClient, keys: dict[str, str], role: str
) -> None:
    page = client.get("/console/alerts", headers=auth(keys[role]), follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/login")
    post = client.post("/console/alerts/1/publish", headers=auth(keys[role]), data={"note": "x"})
    assert post.status_code == 403
    drawing = client.get(
        "/console/structures/RZUHGAKUNBFQJS-UHFFFAOYSA-N.svg",
        headers=auth(keys[role]),
        follow_redirects=False,
    )
    assert drawing.status_code == 303


def test_a_console_session_does_not_open_the_api(officer_client: TestClient) -> None:
    assert officer_client.get("/v1/alerts").status_code == 401


def test_an_officer_cannot_open_or_use_admin_pages(
    officer_client: TestClient, sessions: sessionmaker[Session]
) -> None:
    for path in ("/console/admin/labs", "/console/admin/users", "/console/admin/deliveries"):
        assert officer_client.get(path).status_code == 403
    token = csrf_of(officer_client)
    response = officer_client.post(
        "/console/admin/users",
        data={"csrf_token": token, "email": "new@ews.example.org", "password": "x" * 16},
    )
    assert response.status_code == 403
    with sessions.begin() as session:
        assert session.scalar(select(User).where(User.email == "new@ews.example.org")) is None
        assert session.scalar(select(ApiKey)) is None
    assert "Admin" not in officer_client.get("/console/alerts").text.split("<main")[0]


def test_an_admin_opens_every_admin_page(admin_client: TestClient) -> None:
    for path in (
        "/console/admin/labs",
        "/console/admin/users",
        "/console/admin/subscribers",
        "/console/admin/deliveries",
    ):
        assert admin_client.get(path).status_code == 200, path


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/console/", "/console/\\evil", ""]
)
def test_sign_in_only_returns_to_console_pages(
    client: TestClient, users: dict[str, str], target: str
) -> None:
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={
            "csrf_token": form_token(page.text),
            "email": users["officer"],
            "password": PASSWORD,
            "next": target,
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/console/alerts"


def test_console_pages_carry_the_security_headers(officer_client: TestClient) -> None:
    response = officer_client.get("/console/alerts")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp.split("style-src-attr")[0]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in response.text  # only external scripts


def test_many_sign_in_attempts_from_one_address_are_throttled(
    app: Any, client: TestClient, users: dict[str, str]
) -> None:
    app.state.console_login_limiter = RateLimiter(per_minute=1, burst=2)
    for _ in range(2):
        assert sign_in(client, "someone@ews.example.org", "guess").status_code == 200

    throttled = sign_in(client, users["officer"], PASSWORD)

    assert throttled.status_code == 429
    assert "Too many sign-in attempts" in throttled.text
    assert SESSION_COOKIE not in throttled.headers.get("set-cookie", "")
