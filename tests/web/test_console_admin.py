"""Administration in the console: keys, users, subscribers and deliveries (each audited)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import utc_now
from app.models import ApiKey, AuditLog, Delivery, EmailChannel, Organisation, Subscriber, User
from app.models.enums import ChannelType, DeliveryStatus, OrganisationKind
from tests.conftest import auth, make_organisation
from tests.web.conftest import csrf_of, sign_in

KEY = re.compile(r'<code class="secret-value">(snt_[^<]+)</code>')


def audited(sessions: sessionmaker[Session], action: str) -> AuditLog:
    with sessions.begin() as session:
        row = session.scalar(select(AuditLog).where(AuditLog.action == action))
        assert row is not None, f"no audit row for {action}"
        return row


def test_an_admin_creates_a_lab_key_shown_once_and_revokes_it(
    admin_client: TestClient, sessions: sessionmaker[Session], users: dict[str, str]
) -> None:
    with sessions.begin() as session:
        lab_id = make_organisation(session, "Lab Zagreb", OrganisationKind.LAB, "HR").id
    token = csrf_of(admin_client, "/console/admin/labs")

    created = admin_client.post(
        "/console/admin/keys",
        data={"csrf_token": token, "organisation_id": lab_id, "role": "lab", "label": "LIMS"},
    )

    assert created.status_code == 201
    match = KEY.search(created.text)
    assert match, "the new key is shown"
    plaintext = match.group(1)
    assert plaintext not in admin_client.get("/console/admin/labs").text  # only once
    row = audited(sessions, "api_key.create")
    assert (row.actor, row.actor_type, row.role) == (users["admin"], "user", "admin")
    detection = {
        "substance": {"smiles": "CC(N)Cc1ccccc1"},
        "detected_on": "2026-01-15",
        "country": "HR",
        "sample_type": "seizure",
    }
    assert (
        admin_client.post("/v1/detections", json=detection, headers=auth(plaintext)).status_code
        == 201
    )

    with sessions.begin() as session:
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.organisation_id == lab_id))
    revoked = admin_client.post(
        f"/console/admin/keys/{key_id}/revoke", data={"csrf_token": token}, follow_redirects=False
    )
    assert revoked.status_code == 303
    assert (
        admin_client.post("/v1/detections", json=detection, headers=auth(plaintext)).status_code
        == 401
    )
    assert audited(sessions, "api_key.revoke").object_id == plaintext[:12]


def test_a_lab_key_is_only_for_a_lab(
    admin_client: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        ministry = make_organisation(session, "Ministry", OrganisationKind.MINISTRY).id
    response = admin_client.post(
        "/console/admin/keys",
        data={"csrf_token": csrf_of(admin_client), "organisation_id": ministry, "role": "lab"},
    )
    assert response.status_code == 422
    assert "not a lab" in response.text


def test_an_admin_creates_and_deactivates_an_officer(
    admin_client: TestClient, client: TestClient, sessions: sessionmaker[Session]
) -> None:
    token = csrf_of(admin_client)
    response = admin_client.post(
        "/console/admin/users",
        data={
            "csrf_token": token,
            "email": "New.Officer@ews.example.org",
            "role": "officer",
            "password": "a long enough password",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert audited(sessions, "user.create").detail["email"] == "new.officer@ews.example.org"
    short = admin_client.post(
        "/console/admin/users",
        data={"csrf_token": token, "email": "x@ews.example.org", "password": "short"},
    )
    assert short.status_code == 422

    with sessions.begin() as session:
        user_id = session.scalar(select(User.id).where(User.email == "new.officer@ews.example.org"))
    admin_client.post(f"/console/admin/users/{user_id}/deactivate", data={"csrf_token": token})
    with sessions.begin() as session:
        user = session.get(User, user_id)
        assert user is not None
        assert not user.active
    assert audited(sessions, "user.deactivate").object_id == str(user_id)


def test_an_admin_cannot_deactivate_themselves(
    admin_client: TestClient, sessions: sessionmaker[Session], users: dict[str, str]
) -> None:
    with sessions.begin() as session:
        me = session.scalar(select(User.id).where(User.email == users["admin"]))
    response = admin_client.post(
        f"/console/admin/users/{me}/deactivate", data={"csrf_token": csrf_of(admin_client)}
    )
    assert response.status_code == 409
    assert admin_client.get("/console/alerts").status_code == 200


def test_an_admin_unlocks_a_locked_officer(
    admin_client: TestClient, app: object, sessions: sessionmaker[Session], users: dict[str, str]
) -> None:
    with TestClient(app) as other:  # type: ignore[arg-type]
        for _ in range(5):
            sign_in(other, users["officer"], "wrong password")
        with sessions.begin() as session:
            officer = session.scalar(select(User).where(User.email == users["officer"]))
            assert officer is not None
            assert officer.locked_until is not None
            officer_id = officer.id
        admin_client.post(
            f"/console/admin/users/{officer_id}/unlock", data={"csrf_token": csrf_of(admin_client)}
        )
        assert sign_in(other, users["officer"]).status_code == 303
    assert audited(sessions, "user.unlock").object_id == str(officer_id)


def test_an_admin_creates_a_subscriber_with_an_email_channel(
    admin_client: TestClient, sessions: sessionmaker[Session]
) -> None:
    response = admin_client.post(
        "/console/admin/subscribers",
        data={
            "csrf_token": csrf_of(admin_client),
            "name": "Drug Checking Network",
            "kind": "health",
            "min_level": "advisory",
            "countries": "de, at",
            "email": "alerts@checking.example.org",
        },
    )
    assert response.status_code == 201
    assert "Drug Checking Network" in response.text
    with sessions.begin() as session:
        subscriber = session.scalar(select(Subscriber))
        assert subscriber is not None
        assert subscriber.countries == ["AT", "DE"]
        channel = session.scalar(select(EmailChannel))
        assert channel is not None
        assert channel.address == "alerts@checking.example.org"
    assert audited(sessions, "subscriber.create").detail["name"] == "Drug Checking Network"
    invalid = admin_client.post(
        "/console/admin/subscribers",
        data={"csrf_token": csrf_of(admin_client), "name": "No channel", "kind": "health"},
    )
    assert invalid.status_code == 422


def test_an_admin_sees_dead_letters_and_replays_them(
    admin_client: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        organisation = make_organisation(session, "Ministry", OrganisationKind.MINISTRY)
        subscriber = Subscriber(name="Ministry", kind="ministry", organisation_id=organisation.id)
        session.add(subscriber)
        session.flush()
        channel = EmailChannel(subscriber_id=subscriber.id, address="ews@ministry.example.gov")
        session.add(channel)
        session.flush()
        dead = Delivery(
            message_id="m-1",
            event="alert.published",
            channel_type=ChannelType.EMAIL,
            email_channel_id=channel.id,
            status=DeliveryStatus.DEAD,
            attempts=8,
            last_error="550 mailbox unavailable",
        )
        session.add(dead)
        session.flush()
        dead_id = dead.id
    page = admin_client.get("/console/admin/deliveries?status=dead")
    assert "550 mailbox unavailable" in page.text
    assert "ews@ministry.example.gov" in page.text

    admin_client.post(
        "/console/admin/deliveries/replay-dead", data={"csrf_token": csrf_of(admin_client)}
    )

    with sessions.begin() as session:
        replayed = session.get(Delivery, dead_id)
        assert replayed is not None
        assert replayed.status is DeliveryStatus.PENDING
        assert replayed.next_attempt_at <= utc_now()
    assert audited(sessions, "delivery.replay_dead").detail["count"] == 1


def test_organisations_page_lists_labs_first(
    admin_client: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        make_organisation(session, "A Ministry", OrganisationKind.MINISTRY)
        make_organisation(session, "Z Lab", OrganisationKind.LAB)
    text = admin_client.get("/console/admin/labs").text
    assert text.index("Z Lab") < text.index("A Ministry")
    with sessions.begin() as session:
        assert session.scalar(select(Organisation).where(Organisation.name == "Z Lab"))
