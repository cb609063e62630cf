"""Fixtures of the console tests: users, sign-in, a live server and a headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.web.scenario import ADMIN_EMAIL, OFFICER_EMAIL, PASSWORD, create_users

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def users(sessions: sessionmaker[Session]) -> dict[str, str]:
    """An officer and an admin (both with PASSWORD)."""
    create_users(sessions)
    return {"officer": OFFICER_EMAIL, "admin": ADMIN_EMAIL}


def form_token(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    """Sign in through the form (as a browser would: fetch it, then post it with its token)."""
    page = client.get("/console/login")
    assert page.status_code == 200
    return client.post(
        "/console/login",
        data={"csrf_token": form_token(page.text), "email": email, "password": password},
        follow_redirects=False,
    )


@pytest.fixture
def officer_client(client: TestClient, users: dict[str, str]) -> TestClient:
    assert sign_in(client, users["officer"]).status_code == 303
    return client


@pytest.fixture
def admin_client(client: TestClient, users: dict[str, str]) -> TestClient:
    assert sign_in(client, users["admin"]).status_code == 303
    return client


def csrf_of(client: TestClient, path: str = "/console/alerts") -> str:
    """The session's CSRF token, as found in a page's forms."""
    return form_token(client.get(path).text)


# ---- a live server and a browser ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1 in a background thread, against the test DB."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download). Started per test: a
    Playwright driver left running would keep threads in the test process, and other suites
    fork worker processes."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class BrowserPage:
    page: Any
    errors: list[str]  # console errors and uncaught exceptions (CSP violations show here)


@pytest.fixture
def browser(chromium: Any) -> Iterator[BrowserPage]:
    """A fresh browser context at 1280x800 that records console errors."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    # Generous: a loaded CI machine can take longer than Playwright's 30 s default per action.
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield BrowserPage(page, errors)
    context.close()


DOCS_PICTURES = {"console-queue", "console-alert"}  # shown in the README


def screenshot(page: Any, name: str, backend: str, *, full_page: bool = True) -> Path:
    """Save a screenshot under test-artifacts/; with SENTINEL_UPDATE_SCREENSHOTS=1 the SQLite
    run also copies the README's pictures to docs/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}-{backend}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if (
        name in DOCS_PICTURES
        and backend == "sqlite"
        and os.environ.get("SENTINEL_UPDATE_SCREENSHOTS") == "1"
    ):
        shutil.copyfile(path, ROOT / "docs" / f"{name}.png")
    return path
