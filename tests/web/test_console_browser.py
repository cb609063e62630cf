"""The console in a real browser (Debian's Chromium, headless, driven by Playwright).

Runs on every database backend. Screenshots go to test-artifacts/; with
SENTINEL_UPDATE_SCREENSHOTS=1 the SQLite run also refreshes docs/console-*.png.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import Alert, Delivery
from app.models.enums import AlertStatus, SubjectType
from app.settings import Settings
from tests.web.conftest import BrowserPage, screenshot
from tests.web.scenario import OFFICER_EMAIL, PASSWORD, build

pytestmark = pytest.mark.browser


def backend_of(settings: Settings) -> str:
    return "sqlite" if settings.is_sqlite else "postgres"


def sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/console/alerts")
    assert "/console/login" in page.url  # not signed in yet: sent to the sign-in form
    page.get_by_label("Email").fill(OFFICER_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/console/alerts")


def load_lazy_images(page: Any) -> None:
    """Scroll through the page so that lazily loaded drawings load before a screenshot."""
    height = page.evaluate("document.body.scrollHeight")
    for y in range(0, height, 600):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(50)
    page.wait_for_load_state("networkidle")
    page.evaluate("window.scrollTo(0, 0)")


def image_loaded(page: Any, selector: str) -> bool:
    loaded: bool = page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")
    return loaded


def test_an_officer_triages_and_publishes_an_alert_in_the_browser(
    browser: BrowserPage,
    live_server: str,
    client: TestClient,
    keys: dict[str, str],
    users: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    loaded_references: Any,
) -> None:
    build(client, keys, sessions, settings)
    page = browser.page
    backend = backend_of(settings)
    with sessions.begin() as session:
        to_publish = session.scalar(
            select(Alert).where(Alert.status == AlertStatus.NEW).order_by(Alert.score.desc())
        )
        cluster_alert = session.scalar(
            select(Alert).where(Alert.subject_type == SubjectType.CLUSTER)
        )
        assert to_publish is not None
        assert cluster_alert is not None
        subject_name = to_publish.title.split(": ", 1)[1]

    sign_in(page, live_server)

    # The queue: counts per level, rows with drawings, most severe first.
    assert page.locator(".count-tile").count() == 4
    rows = page.locator("tr.queue-row")
    assert rows.count() >= 5
    assert "lvl-critical" in (rows.first.get_attribute("class") or "")
    page.locator("tr.queue-row img.structure").first.scroll_into_view_if_needed()
    page.wait_for_load_state("networkidle")
    assert image_loaded(page, "tr.queue-row img.structure")
    # An officer acknowledges one alert before the pictures are taken (a realistic queue).
    acknowledged = page.locator("tr.queue-row.lvl-warning a.subject-link").last
    acknowledged.click()
    page.get_by_role("button", name="Acknowledge").click()
    assert page.get_by_role("status").inner_text().startswith("Alert acknowledged.")
    page.get_by_role("link", name="Back to the queue").click()
    page.wait_for_load_state("networkidle")
    screenshot(page, "console-queue", backend)

    # The alert: drawing, nearest references, score breakdown, weekly charts with a threshold.
    page.get_by_role("link", name=subject_name, exact=True).first.click()
    page.wait_for_url(f"{live_server}/console/alerts/{to_publish.id}")
    page.wait_for_load_state("networkidle")
    assert image_loaded(page, "img.structure-large")
    assert page.locator("svg.chart").count() == 3  # by country, by context, score history
    assert page.locator("svg.chart path.threshold").count() == 2
    assert page.locator("svg.chart rect").count() > 0
    assert page.locator("table.components tbody tr").count() == 6

    # Publish with a note: the outbox gets a delivery per subscriber channel.
    page.get_by_label("Note to subscribers").fill("Confirmed by two laboratories.")
    page.get_by_role("button", name="Publish to subscribers").click()
    status = page.get_by_role("status").inner_text()
    assert status.startswith("Alert published to subscribers.")
    assert re.search(r"[1-9]\d* deliveries in the outbox", status)
    assert page.locator(".deliveries .dstatus-pending").count() >= 1
    assert "Confirmed by two laboratories." in page.locator(".timeline").inner_text()
    with sessions.begin() as session:
        assert session.scalars(select(Delivery).where(Delivery.alert_id == to_publish.id)).all()

    # At once in the queue.
    page.goto(f"{live_server}/console/alerts?status=published")
    published = page.locator(f'tr[data-href="/console/alerts/{to_publish.id}"]')
    assert published.locator(".status-published").count() == 1

    # The picture of an alert page: the nitazene cluster.
    page.goto(f"{live_server}/console/alerts/{cluster_alert.id}")
    assert page.locator(".members .member").count() >= 2
    load_lazy_images(page)
    screenshot(page, "console-alert-full", backend)
    page.set_viewport_size({"width": 1280, "height": 1700})
    screenshot(page, "console-alert", backend, full_page=False)

    # A narrow screen: no sideways scrolling, the queue becomes cards.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server}/console/alerts")
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    screenshot(page, "console-queue-narrow", backend, full_page=False)
    assert browser.errors == []  # no CSP violation, no script error


def test_a_post_without_the_csrf_token_is_refused_in_the_browser(
    browser: BrowserPage,
    live_server: str,
    client: TestClient,
    keys: dict[str, str],
    users: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    loaded_references: Any,
) -> None:
    build(client, keys, sessions, settings, full=False, score_days=7)
    with sessions.begin() as session:
        alert = session.scalar(select(Alert).where(Alert.status == AlertStatus.NEW))
        assert alert is not None
    page = browser.page
    sign_in(page, live_server)

    # A script (e.g. injected, or on another tab) posts the form without the token.
    status = page.evaluate(
        """async (path) => {
            const body = new URLSearchParams({note: "sent without a token"});
            const response = await fetch(path, {method: "POST", body});
            return response.status;
        }""",
        f"/console/alerts/{alert.id}/acknowledge",
    )
    assert status == 403
    # And a form whose token was tampered with.
    page.goto(f"{live_server}/console/alerts/{alert.id}")
    page.eval_on_selector(
        "form[action$='/acknowledge'] input[name=csrf_token]", "input => input.value = 'forged'"
    )
    page.get_by_role("button", name="Acknowledge").click()
    assert "CSRF" in page.get_by_role("alert").inner_text()
    with sessions.begin() as session:
        refreshed = session.get(Alert, alert.id)
        assert refreshed is not None
        assert refreshed.status is AlertStatus.NEW
