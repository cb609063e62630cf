"""A scoring pass and an officer's action on the same alert take turns: the action waits for
the pass and applies to what it wrote, rather than being overwritten by it (PostgreSQL; SQLite's
writers take turns at BEGIN anyway)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import jobs
from app.models import Alert
from app.scoring import service as scoring_service
from app.settings import Settings
from reference_standards import Library
from tests.app.delivery_support import make_alert
from tests.conftest import auth


def test_an_action_during_a_scoring_pass_waits_and_is_not_lost(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    database_url: str,
    loaded_references: Library,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writers take turns at BEGIN: a pass and an action cannot overlap")
    with sessions.begin() as session:
        alert_id = make_alert(session).id
    holding, release = threading.Event(), threading.Event()
    original_gather = scoring_service.gather

    def paused_gather(*args: Any, **kwargs: Any) -> Any:
        holding.set()  # the pass has read (and locked) the open alerts
        assert release.wait(30)
        return original_gather(*args, **kwargs)

    monkeypatch.setattr(scoring_service, "gather", paused_gather)
    context = jobs.JobContext(sessions, settings)
    scoring = threading.Thread(target=jobs.score_threats, args=(context,))
    scoring.start()
    assert holding.wait(30)
    answers: list[int] = []

    def acknowledge() -> None:
        response = client.post(
            f"/v1/alerts/{alert_id}/acknowledge", json={}, headers=auth(keys["officer"])
        )
        answers.append(response.status_code)

    action = threading.Thread(target=acknowledge)
    action.start()
    action.join(1.0)
    waited = action.is_alive()  # still waiting for the pass's lock
    release.set()
    scoring.join(30)
    action.join(30)

    assert waited
    assert len(answers) == 1
    with sessions.begin() as session:
        alert = session.scalar(select(Alert).where(Alert.id == alert_id))
        assert alert is not None
        final = alert.status.value
    # The action saw what the pass wrote: it applied on top of it, or was refused by it.
    assert (answers[0], final) in {(200, "acknowledged"), (409, "resolved")}
