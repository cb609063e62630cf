"""CAP 1.2 rendering, its Atom feed, and the specification checks that validate both."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from alerts.cap import (
    ATOM_NAMESPACE,
    CAP_MEDIA_TYPE,
    CAP_NAMESPACE,
    AtomEntry,
    CapAlert,
    CapArea,
    CapInfo,
    format_cap_datetime,
    reference_to,
    render_atom_feed,
    render_cap,
    severity_for,
)
from alerts.cap_validation import validate_cap
from alerts.levels import AlertLevel

CAP = f"{{{CAP_NAMESPACE}}}"
ATOM = f"{{{ATOM_NAMESPACE}}}"
SENT = datetime(2026, 11, 28, 4, 10, 0, 123456, tzinfo=UTC)

INFO = CapInfo(
    category=("Health",),
    event="New psychoactive substance: nitazene analogue",
    urgency="Expected",
    severity=severity_for(AlertLevel.WARNING),
    certainty="Likely",
    headline="Warning: N-pyrrolidino protonitazene detected in 3 countries",
    description="4 detections in 14 days, 2 deaths; potency tier high. Score 0.81 & rising <fast>.",
    instruction="Alert emergency departments; naloxone may need repeated doses.",
    web="https://sentinel.example/alerts/42",
    parameters=(
        ("InChIKey", "QQWZBVNBFPDTBJ-UHFFFAOYSA-N"),
        ("substanceName", "N-pyrrolidino protonitazene"),
        ("alertLevel", "warning"),
    ),
    areas=(CapArea("DE", "Germany"), CapArea("fr", "France")),
    sender_name="Sentinel-NPS early warning system",
)
ALERT = CapAlert(
    identifier="sentinel-nps-alert-42-v1",
    sender="alerts@sentinel.example",
    sent=SENT,
    restriction="For public health and law-enforcement agencies only",
    note="Published by officer after review",
    info=(INFO,),
)


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def local_names(element: ET.Element) -> list[str]:
    return [child.tag.removeprefix(CAP) for child in element]


# ---- rendering -------------------------------------------------------------------------------


def test_rendered_alert_is_valid_cap() -> None:
    assert validate_cap(render_cap(ALERT)) == []


def test_rendered_alert_has_the_schema_order_and_values() -> None:
    root = parse(render_cap(ALERT))
    assert root.tag == f"{CAP}alert"
    assert local_names(root) == [
        "identifier", "sender", "sent", "status", "msgType", "scope", "restriction", "note", "info",
    ]  # fmt: skip
    assert root.findtext(f"{CAP}sent") == "2026-11-28T04:10:00-00:00"
    assert root.findtext(f"{CAP}scope") == "Restricted"
    info = root.find(f"{CAP}info")
    assert info is not None
    assert local_names(info) == [
        "language", "category", "event", "urgency", "severity", "certainty", "senderName",
        "headline", "description", "instruction", "web", "parameter", "parameter", "parameter",
        "area", "area",
    ]  # fmt: skip
    assert info.findtext(f"{CAP}severity") == "Severe"
    assert info.findtext(f"{CAP}description") == INFO.description  # & and < survive escaping
    parameters = {
        p.findtext(f"{CAP}valueName"): p.findtext(f"{CAP}value")
        for p in info.findall(f"{CAP}parameter")
    }
    assert parameters["InChIKey"] == "QQWZBVNBFPDTBJ-UHFFFAOYSA-N"
    geocodes = [
        (area.findtext(f"{CAP}areaDesc"), g.findtext(f"{CAP}valueName"), g.findtext(f"{CAP}value"))
        for area in info.findall(f"{CAP}area")
        for g in area.findall(f"{CAP}geocode")
    ]
    assert geocodes == [
        ("Germany", "ISO 3166-1 alpha-2", "DE"),
        ("France", "ISO 3166-1 alpha-2", "FR"),
    ]


def test_update_and_cancel_reference_the_original() -> None:
    later = SENT + timedelta(hours=6)
    for msg_type in ("Update", "Cancel"):
        follow_up = replace(
            ALERT,
            identifier=f"sentinel-nps-alert-42-{msg_type.lower()}",
            sent=later,
            msg_type=msg_type,
            references=(reference_to(ALERT),),
        )
        xml = render_cap(follow_up)
        assert validate_cap(xml) == []
        assert parse(xml).findtext(f"{CAP}references") == (
            "alerts@sentinel.example,sentinel-nps-alert-42-v1,2026-11-28T04:10:00-00:00"
        )


def test_security_category_and_public_scope_render_validly() -> None:
    alert = replace(
        ALERT,
        scope="Public",
        restriction="",
        info=(replace(INFO, category=("Health", "Security"), response_types=("Monitor",)),),
    )
    xml = render_cap(alert)
    assert validate_cap(xml) == []
    info = parse(xml).find(f"{CAP}info")
    assert info is not None
    assert [c.text for c in info.findall(f"{CAP}category")] == ["Health", "Security"]


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (AlertLevel.CRITICAL, "Extreme"),
        (AlertLevel.WARNING, "Severe"),
        (AlertLevel.ADVISORY, "Moderate"),
        (AlertLevel.INFO, "Minor"),
    ],
)
def test_severity_follows_the_alert_level(level: AlertLevel, severity: str) -> None:
    assert severity_for(level) == severity


def test_cap_times_are_utc_with_minus_zero_offset_and_whole_seconds() -> None:
    cet = timezone(timedelta(hours=1))
    assert format_cap_datetime(datetime(2026, 11, 28, 5, 10, 0, 999, tzinfo=cet)) == (
        "2026-11-28T04:10:00-00:00"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        format_cap_datetime(datetime(2026, 11, 28, 4, 10))


def test_control_characters_are_dropped_from_text() -> None:
    xml = render_cap(replace(ALERT, note="lab note\x00 with \x1bescape"))
    assert parse(xml).findtext(f"{CAP}note") == "lab note with escape"


# ---- validation of mutated documents --------------------------------------------------------

VALID = render_cap(ALERT)
UPDATE = render_cap(replace(ALERT, msg_type="Update", references=(reference_to(ALERT),)))


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            VALID.replace("<identifier>sentinel-nps-alert-42-v1</identifier>", ""),
            "alert/identifier: required element is missing",
        ),
        (VALID.replace("<severity>Severe</severity>", "<severity>High</severity>"), "'High'"),
        (
            VALID.replace(
                "<restriction>For public health and law-enforcement agencies only</restriction>", ""
            ),
            "alert/restriction: required when scope is Restricted",
        ),
        (
            UPDATE.replace(f"<references>{reference_to(ALERT)}</references>", ""),
            "alert/references: required when msgType is Update",
        ),
        (VALID.replace("04:10:00-00:00", "04:10:00Z"), "uses 'Z'"),
        (VALID.replace("04:10:00-00:00", "04:10:00.5-00:00"), "no fractional seconds"),
        (VALID.replace("04:10:00-00:00", "04:10:00+00:00"), "UTC to be written '-00:00'"),
        (VALID.replace("2026-11-28T", "2026-13-28T"), "not a valid date"),
        (VALID.replace("sentinel-nps-alert-42-v1", "alert 42"), "must not contain spaces"),
        (VALID.replace("sentinel-nps-alert-42-v1", "alert,42"), "must not contain spaces"),
        (VALID.replace("sentinel-nps-alert-42-v1", "alert&amp;42"), "'<' or '&'"),
        (VALID.replace("<status>Actual</status>", "<status>Real</status>"), "alert/status"),
        (VALID.replace("<msgType>Alert</msgType>", "<msgType>Notice</msgType>"), "msgType"),
        (VALID.replace("<scope>Restricted</scope>", "<scope>Secret</scope>"), "alert/scope"),
        (VALID.replace("<category>Health</category>", "<category>Drugs</category>"), "category"),
        (VALID.replace("<category>Health</category>", ""), "category: required element"),
        (VALID.replace("<urgency>Expected</urgency>", "<urgency>Soon</urgency>"), "urgency"),
        (
            VALID.replace("<certainty>Likely</certainty>", "<certainty>Sure</certainty>"),
            "certainty",
        ),
        (
            VALID.replace("<event>", "<responseType>Run</responseType><event>"),
            "event: out of order (must come before <responseType>)",
        ),
        (
            VALID.replace("<status>Actual</status>", "").replace(
                "</scope>", "</scope><status>Actual</status>"
            ),
            "alert/status: out of order (must come before <scope>)",
        ),
        (
            VALID.replace("<scope>Restricted</scope>", "<scope>Private</scope>"),
            "alert/addresses: required when scope is Private",
        ),
        (VALID.replace("<note>", "<colour>red</colour><note>"), "unexpected element <colour>"),
        (VALID.replace("<web>https://", "<web>sentinel.example/"), "not an absolute URI"),
        (VALID.replace("<areaDesc>Germany</areaDesc>", ""), "areaDesc: required element"),
        (
            VALID.replace(
                "<areaDesc>Germany</areaDesc>",
                "<areaDesc>Germany</areaDesc><polygon>1,1 2,2 1,1</polygon>",
            ),
            "at least 4 points",
        ),
        (
            VALID.replace(
                "<areaDesc>Germany</areaDesc>",
                "<areaDesc>Germany</areaDesc><circle>95,10 5</circle>",
            ),
            "outside WGS 84",
        ),
        (
            UPDATE.replace(reference_to(ALERT), "alerts@sentinel.example,only-two"),
            "not 'sender,identifier,sent'",
        ),
        (VALID.replace(CAP_NAMESPACE, "urn:oasis:names:tc:emergency:cap:1.1"), "root element"),
        (VALID.replace("</alert>", ""), "not well-formed"),
        (
            VALID.replace("<alert ", '<!DOCTYPE alert [<!ENTITY x "y">]><alert '),
            "DOCTYPE is not allowed",
        ),
    ],
)
def test_mutated_document_is_reported(document: str, expected: str) -> None:
    problems = validate_cap(document)
    assert any(expected in problem for problem in problems), problems


def test_repeated_single_element_is_reported() -> None:
    document = VALID.replace("<note>", "<note>first</note><note>")
    assert "alert/note: occurs 2 times, at most 1 allowed" in validate_cap(document)


def test_a_valid_polygon_circle_and_resource_pass() -> None:
    extra = (
        "<areaDesc>Germany</areaDesc><polygon>47.3,5.9 55.1,5.9 55.1,15.0 47.3,5.9</polygon>"
        "<circle>52.52,13.40 25</circle>"
    )
    document = VALID.replace("<areaDesc>Germany</areaDesc>", extra)
    assert validate_cap(document) == []


# ---- Atom feed -----------------------------------------------------------------------------


def test_atom_feed_links_each_cap_document_and_may_embed_it() -> None:
    update = replace(ALERT, identifier="sentinel-nps-alert-43-v1", sent=SENT + timedelta(hours=1))
    feed = render_atom_feed(
        feed_id="urn:uuid:5b8a3f0e-7c1d-4d36-9a7e-2f3c1b0a9e11",
        title="Sentinel-NPS published alerts",
        updated=SENT + timedelta(hours=1),
        self_url="https://sentinel.example/v1/feeds/cap",
        entries=[
            AtomEntry(
                entry_id="https://sentinel.example/v1/alerts/43/cap",
                title="Warning: N-pyrrolidino protonitazene & co.",
                updated=update.sent,
                cap_url="https://sentinel.example/v1/alerts/43/cap",
                summary="4 detections in 14 days",
                cap_xml=render_cap(update),
            ),
            AtomEntry(
                entry_id="https://sentinel.example/v1/alerts/42/cap",
                title="Warning: nitazene analogue",
                updated=SENT,
                published=SENT,
                cap_url="https://sentinel.example/v1/alerts/42/cap",
            ),
        ],
    )
    root = parse(feed)
    assert root.tag == f"{ATOM}feed"
    assert root.findtext(f"{ATOM}updated") == "2026-11-28T05:10:00Z"
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [
        "Warning: N-pyrrolidino protonitazene & co.",
        "Warning: nitazene analogue",
    ]
    for entry in entries:
        link = entry.find(f"{ATOM}link")
        assert link is not None
        assert (link.get("rel"), link.get("type")) == ("alternate", CAP_MEDIA_TYPE)
        assert link.get("href", "").endswith("/cap")
    content = entries[0].find(f"{ATOM}content")
    assert content is not None
    assert content.get("type") == CAP_MEDIA_TYPE
    [embedded] = list(content)
    assert validate_cap(ET.tostring(embedded, encoding="unicode")) == []
    assert entries[1].find(f"{ATOM}content") is None


def test_atom_feed_refuses_naive_times_and_non_cap_content() -> None:
    common = {"feed_id": "urn:x", "title": "t", "self_url": "https://s.example/feed"}
    with pytest.raises(ValueError, match="timezone-aware"):
        render_atom_feed(updated=datetime(2026, 1, 1), entries=[], **common)
    entry = AtomEntry(
        entry_id="urn:e", title="t", updated=SENT, cap_url="https://s/cap", cap_xml="<feed/>"
    )
    with pytest.raises(ValueError, match=r"not a CAP 1\.2 alert"):
        render_atom_feed(updated=SENT, entries=[entry], **common)
