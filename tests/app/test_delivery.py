"""End to end: a published alert reaches a real SMTP server and a real webhook receiver (both
on 127.0.0.1), the signature verifies with the independent `standardwebhooks` package, the
CAP document validates, and subscriber keys see only what they were sent."""

from __future__ import annotations

import email
import email.policy
import json
import random
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from alerts.cap import ATOM_NAMESPACE, CAP_NAMESPACE, COUNTRY_GEOCODE
from alerts.cap_validation import validate_cap
from app.db import Base
from app.delivery import deliver_due
from app.main import create_app
from app.models import ApiKey
from app.models.enums import ApiRole
from app.security import generate_api_key
from app.settings import Settings
from reference_standards import Library
from tests.app.delivery_support import (
    SUBSTANCE,
    HookReceiver,
    SmtpRecorder,
    channel,
    create_subscriber,
    delivery_settings,
    hook_receiver,
    make_alert,
    smtp_server,
)
from tests.conftest import auth

CAP = {"cap": CAP_NAMESPACE}
ATOM = {"atom": ATOM_NAMESPACE}


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, SmtpRecorder]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    with hook_receiver() as receiver:
        yield receiver


@pytest.fixture
def settings(settings: Settings, smtp: tuple[Controller, SmtpRecorder]) -> Settings:
    return delivery_settings(settings, smtp[0].port)


def subscriber_key(sessions: sessionmaker[Session], organisation_id: int) -> str:
    new = generate_api_key()
    with sessions.begin() as session:
        session.add(
            ApiKey(
                prefix=new.prefix,
                key_hash=new.key_hash,
                role=ApiRole.SUBSCRIBER,
                organisation_id=organisation_id,
            )
        )
    return new.plaintext


def publish(client: TestClient, officer: str, alert_id: int) -> None:
    response = client.post(
        f"/v1/alerts/{alert_id}/publish", json={"note": "confirmed"}, headers=auth(officer)
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "published"


def cap_parameters(info: ET.Element) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for parameter in info.findall("cap:parameter", CAP):
        name = parameter.findtext("cap:valueName", namespaces=CAP) or ""
        found.setdefault(name, []).append(parameter.findtext("cap:value", namespaces=CAP) or "")
    return found


def test_a_published_alert_reaches_email_webhook_cap_and_the_subscribers_keys(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    loaded_references: Library,
    smtp: tuple[Controller, SmtpRecorder],
    receiver: HookReceiver,
) -> None:
    admin, officer = keys["admin"], keys["officer"]
    health = create_subscriber(
        client,
        admin,
        "Health Ministry DE",
        [
            {"type": "email", "address": "ews@health.example"},
            {"type": "webhook", "url": receiver.url("/hooks/health")},
        ],
        countries=["DE"],
    )
    secret = channel(health, "webhook")["secret"]
    assert secret.startswith("whsec_")
    police = create_subscriber(
        client,
        admin,
        "Federal Police",
        [{"type": "webhook", "url": receiver.url("/hooks/police")}],
        kind="law_enforcement",
        chemical_groups=["nitazene"],
    )
    unrelated = create_subscriber(
        client,
        admin,
        "Customs NL",
        [{"type": "webhook", "url": receiver.url("/hooks/nl")}],
        countries=["NL"],
    )
    listed = client.get("/v1/subscribers", headers=auth(admin)).json()
    assert all(c.get("secret") is None for s in listed for c in s["channels"])  # shown once

    with sessions.begin() as session:
        alert_id = make_alert(session).id
    assert client.get("/v1/deliveries", headers=auth(admin)).json() == []  # not published yet
    publish(client, officer, alert_id)
    deliveries = client.get("/v1/deliveries", headers=auth(admin)).json()
    assert sorted((d["channel_type"], d["status"]) for d in deliveries) == [
        ("email", "pending"),
        ("webhook", "pending"),
        ("webhook", "pending"),
    ]

    result = deliver_due(sessions, settings, rng=random.Random(7))
    assert (result.claimed, result.delivered) == (3, 3)

    deliveries = client.get("/v1/deliveries", headers=auth(admin)).json()
    assert {(d["status"], d["attempts"], d["alert_id"]) for d in deliveries} == {
        ("delivered", 1, alert_id)
    }
    by_channel = {(d["channel_type"], d["channel_id"]): d for d in deliveries}

    # Email: one message, both parts, Message-ID derived from the delivery's message id.
    _, recorder = smtp
    assert len(recorder.messages) == 1
    envelope = recorder.messages[0]
    assert envelope.rcpt_tos == ["ews@health.example"]
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert message["Subject"] == f"[Sentinel-NPS WARNING] Alert: {SUBSTANCE}"
    email_delivery = by_channel[("email", channel(health, "email")["id"])]
    assert message["Message-ID"] == f"<{email_delivery['message_id']}@sentinel-nps>"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert SUBSTANCE in text.get_content()
    assert email_delivery["message_id"] in text.get_content()
    assert f"<h2>Alert: Warning: {SUBSTANCE}</h2>" in html.get_content()

    # Webhook: verified with the independent package, with the secret shown at creation.
    hooks = receiver.to("/hooks/health")
    assert len(hooks) == 1
    assert not receiver.to("/hooks/nl")
    hook = hooks[0]
    payload = Webhook(secret).verify(hook.body, hook.headers)
    webhook_delivery = by_channel[("webhook", channel(health, "webhook")["id"])]
    assert hook.headers["webhook-id"] == webhook_delivery["message_id"] == payload["message_id"]
    assert payload["type"] == "alert.published"
    summary = payload["alert"]
    assert (summary["id"], summary["level"], summary["countries"]) == (
        alert_id,
        "warning",
        ["DE", "FR"],
    )
    inchikey = summary["subject"]["inchikey"]
    assert summary["subject"]["name"] == SUBSTANCE
    assert len(inchikey) == 27
    assert (summary["subject"]["chemical_group"], summary["subject"]["effect_group"]) == (
        "nitazene",
        "opioid",
    )
    assert summary["links"]["cap"].endswith(f"/v1/alerts/{alert_id}/cap")
    assert len(hook.body) < 4096  # the summary stays small
    police_hook = receiver.to("/hooks/police")[0]
    assert Webhook(channel(police, "webhook")["secret"]).verify(
        police_hook.body, police_hook.headers
    )
    assert police_hook.headers["webhook-id"] != hook.headers["webhook-id"]

    # CAP 1.2 document.
    response = client.get(f"/v1/alerts/{alert_id}/cap", headers=auth(officer))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/cap+xml")
    assert validate_cap(response.text) == []
    root = ET.fromstring(response.text)
    assert root.findtext("cap:msgType", namespaces=CAP) == "Alert"
    assert root.findtext("cap:scope", namespaces=CAP) == "Restricted"
    assert root.findtext("cap:restriction", namespaces=CAP)
    info = root.find("cap:info", CAP)
    assert info is not None
    assert [c.text for c in info.findall("cap:category", CAP)] == ["Health"]
    assert info.findtext("cap:severity", namespaces=CAP) == "Severe"
    parameters = cap_parameters(info)
    assert parameters["InChIKey"] == [inchikey]
    assert parameters["name"] == [SUBSTANCE]
    assert parameters["level"] == ["warning"]
    areas = {
        area.findtext("cap:geocode/cap:value", namespaces=CAP): area.findtext(
            "cap:areaDesc", namespaces=CAP
        )
        for area in info.findall("cap:area", CAP)
    }
    assert areas == {"DE": "Germany", "FR": "France"}
    assert {
        g.findtext("cap:valueName", namespaces=CAP)
        for g in info.findall("cap:area/cap:geocode", CAP)
    } == {COUNTRY_GEOCODE}

    # Atom feed of CAP entries, each embedded document valid too.
    feed = client.get("/v1/feeds/cap", headers=auth(officer))
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/atom+xml")
    atom = ET.fromstring(feed.text)
    assert atom.tag == f"{{{ATOM_NAMESPACE}}}feed"
    entries = atom.findall("atom:entry", ATOM)
    assert [e.findtext("atom:id", namespaces=ATOM) for e in entries] == [
        f"urn:sentinel-nps:sentinel-nps-alert-{alert_id}-v1"
    ]
    embedded = entries[0].find("atom:content/cap:alert", {**ATOM, **CAP})
    assert embedded is not None
    assert validate_cap(ET.tostring(embedded, encoding="unicode")) == []

    # Subscriber keys: the organisation that was sent the alert sees it; another does not.
    own = subscriber_key(sessions, health["organisation_id"])
    other = subscriber_key(sessions, unrelated["organisation_id"])
    assert [a["id"] for a in client.get("/v1/alerts", headers=auth(own)).json()["items"]] == [
        alert_id
    ]
    assert client.get(f"/v1/alerts/{alert_id}", headers=auth(own)).status_code == 200
    assert client.get("/v1/alerts", headers=auth(other)).json()["items"] == []
    assert client.get(f"/v1/alerts/{alert_id}", headers=auth(other)).status_code == 404
    assert client.get(f"/v1/alerts/{alert_id}/cap", headers=auth(other)).status_code == 404
    other_feed = ET.fromstring(client.get("/v1/feeds/cap", headers=auth(other)).text)
    assert other_feed.findall("atom:entry", ATOM) == []
    assert client.get("/v1/deliveries", headers=auth(own)).status_code == 403
    # A law-enforcement subscriber's CAP adds the Security category.
    police_key = subscriber_key(sessions, police["organisation_id"])
    police_cap = client.get(f"/v1/alerts/{alert_id}/cap", headers=auth(police_key)).text
    assert validate_cap(police_cap) == []
    categories = ET.fromstring(police_cap).findall("cap:info/cap:category", CAP)
    assert [c.text for c in categories] == ["Health", "Security"]

    # A second pass finds nothing due: each message went exactly once.
    assert deliver_due(sessions, settings).claimed == 0
    assert len(recorder.messages) == 1
    assert len(receiver.requests) == 2


def test_webhook_secrets_are_never_stored_in_plaintext(
    client: TestClient,
    keys: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    loaded_references: Library,
    receiver: HookReceiver,
) -> None:
    created = create_subscriber(
        client, keys["admin"], "Health", [{"type": "webhook", "url": receiver.url("/h")}]
    )
    endpoint_id = channel(created, "webhook")["id"]
    rotated = client.post(f"/v1/webhooks/{endpoint_id}/rotate-secret", headers=auth(keys["admin"]))
    assert rotated.status_code == 200
    secrets = [channel(created, "webhook")["secret"], rotated.json()["secret"]]
    with sessions.begin() as session:
        alert_id = make_alert(session).id
    publish(client, keys["officer"], alert_id)
    assert deliver_due(sessions, settings).delivered == 1
    hook = receiver.requests[0]
    for secret in secrets:  # both sign during the overlap
        Webhook(secret).verify(hook.body, hook.headers)

    dump = []
    with sessions.begin() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                dump.append(json.dumps([str(value) for value in row]))
    everything = "\n".join(dump)
    assert str(endpoint_id) in everything
    assert "alert.published" in everything
    for secret in secrets:
        assert secret not in everything
        assert secret.removeprefix("whsec_") not in everything


def test_hostile_webhook_urls_are_refused_naming_the_field(
    client: TestClient, keys: dict[str, str], settings: Settings, engine: Engine
) -> None:
    def refused(api: TestClient, url: str) -> dict[str, Any]:
        response = api.post(
            "/v1/subscribers",
            json={
                "name": "Hostile",
                "kind": "other",
                "channels": [
                    {"type": "email", "address": "a@b.example"},
                    {"type": "webhook", "url": url},
                ],
            },
            headers=auth(keys["admin"]),
        )
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem: dict[str, Any] = response.json()
        assert [error["field"] for error in problem["errors"]] == ["channels.1.url"], url
        return problem

    # With the allow-list for 127.0.0.0/8 (this module's settings) these stay refused.
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "https://192.168.1.10/hook",
        "https://100.64.0.1/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://[64:ff9b::a00:1]/hook",
        "https://[2002:a00:1::]/hook",
        "https://224.0.0.1/hook",
        "http://8.8.8.8/hook",  # public, but plain http only inside the allowed networks
        "ftp://127.0.0.1/hook",
        "https://user:pw@127.0.0.1/hook",
    ]:
        refused(client, url)
    assert "link-local" in refused(client, "http://169.254.169.254/")["errors"][0]["reason"]

    # Without the allow-list, loopback in every spelling is refused too.
    plain = settings.model_copy(update={"webhook_allowed_networks": ""})
    with TestClient(create_app(plain, engine=engine), raise_server_exceptions=False) as bare:
        for url in [
            "http://127.0.0.1/",
            "https://127.0.0.1:8443/hook",
            "https://2130706433/hook",
            "https://0x7f.1/hook",
            "https://[::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
        ]:
            assert "loopback" in refused(bare, url)["errors"][0]["reason"], url
        assert bare.get("/v1/subscribers", headers=auth(keys["admin"])).json() == []
