"""OASIS CAP 1.2 alert documents and the Atom feed that lists them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from alerts.levels import AlertLevel

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_MEDIA_TYPE = "application/cap+xml"
ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
COUNTRY_GEOCODE = "ISO 3166-1 alpha-2"  # the <valueName> of each area's country geocode

# XML 1.0 forbids most C0 control characters even when escaped; they are dropped from text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class CapArea:
    """One affected area: a country (ISO 3166-1 alpha-2 code) and its name for people."""

    country_code: str
    description: str


@dataclass(frozen=True, slots=True)
class CapInfo:
    """One CAP <info> block. Empty strings and tuples leave the optional elements out.

    Values are CAP's own words: category from Geo, Met, Safety, Security, Rescue, Fire, Health,
    Env, Transport, Infra, CBRNE, Other; urgency Immediate/Expected/Future/Past/Unknown;
    severity Extreme/Severe/Moderate/Minor/Unknown (see `severity_for`); certainty
    Observed/Likely/Possible/Unlikely/Unknown. `parameters` and `event_codes` are
    (valueName, value) pairs.
    """

    category: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str = ""
    description: str = ""
    instruction: str = ""
    web: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    areas: tuple[CapArea, ...] = ()
    sender_name: str = ""
    language: str = "en"
    response_types: tuple[str, ...] = ()
    audience: str = ""
    event_codes: tuple[tuple[str, str], ...] = ()
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    contact: str = ""


@dataclass(frozen=True, slots=True)
class CapAlert:
    """One CAP <alert> message.

    `msg_type` is Alert, Update or Cancel (also Ack, Error); an Update or Cancel lists the
    messages it refers to in `references`, each "sender,identifier,sent" (see `reference_to`).
    `scope` Restricted needs a `restriction` text, Private needs `addresses`. `sent` must be
    timezone-aware.
    """

    identifier: str
    sender: str
    sent: datetime
    status: str = "Actual"
    msg_type: str = "Alert"
    scope: str = "Restricted"
    restriction: str = ""
    references: tuple[str, ...] = ()
    note: str = ""
    info: tuple[CapInfo, ...] = ()
    source: str = ""
    addresses: str = ""
    code: tuple[str, ...] = ()
    incidents: str = ""


@dataclass(frozen=True, slots=True)
class AtomEntry:
    """One feed entry: a published alert and the URL of its CAP document.

    `entry_id` is a permanent IRI (e.g. the CAP URL or `urn:uuid:...`). When `cap_xml` is
    given the CAP document is also embedded as the entry's content.
    """

    entry_id: str
    title: str
    updated: datetime
    cap_url: str
    summary: str = ""
    published: datetime | None = None
    cap_xml: str | None = None


def severity_for(level: AlertLevel) -> str:
    """CAP <severity> for an alert level: critical Extreme, warning Severe, advisory Moderate,
    info Minor."""
    return level.cap_severity


def format_cap_datetime(moment: datetime) -> str:
    """CAP 1.2 dateTime: `YYYY-MM-DDThh:mm:ss-00:00`, in UTC, whole seconds.

    CAP 1.2 (3.3.2) forbids alphabetic zone designators such as "Z" and says UTC MUST be
    written "-00:00"; its pattern has no fractional seconds, so they are truncated.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("CAP times must be timezone-aware")
    utc = moment.astimezone(UTC).replace(microsecond=0)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def reference_to(alert: CapAlert) -> str:
    """The `sender,identifier,sent` triple an Update or Cancel uses to refer to `alert`."""
    return f"{alert.sender},{alert.identifier},{format_cap_datetime(alert.sent)}"


def render_cap(alert: CapAlert) -> str:
    """The CAP 1.2 XML document (UTF-8 declaration, default namespace, schema element order)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<alert xmlns="{CAP_NAMESPACE}">']
    add = _Writer(lines, depth=1)
    add.text("identifier", alert.identifier)
    add.text("sender", alert.sender)
    add.text("sent", format_cap_datetime(alert.sent))
    add.text("status", alert.status)
    add.text("msgType", alert.msg_type)
    add.optional("source", alert.source)
    add.text("scope", alert.scope)
    add.optional("restriction", alert.restriction)
    add.optional("addresses", alert.addresses)
    for code in alert.code:
        add.text("code", code)
    add.optional("note", alert.note)
    add.optional("references", " ".join(alert.references))
    add.optional("incidents", alert.incidents)
    for info in alert.info:
        _render_info(add, info)
    lines.append("</alert>")
    return "\n".join(lines) + "\n"


def _render_info(add: _Writer, info: CapInfo) -> None:
    add.open("info")
    add.optional("language", info.language)
    for category in info.category:
        add.text("category", category)
    add.text("event", info.event)
    for response_type in info.response_types:
        add.text("responseType", response_type)
    add.text("urgency", info.urgency)
    add.text("severity", info.severity)
    add.text("certainty", info.certainty)
    add.optional("audience", info.audience)
    for name, value in info.event_codes:
        add.pair("eventCode", name, value)
    for tag, moment in (
        ("effective", info.effective),
        ("onset", info.onset),
        ("expires", info.expires),
    ):
        if moment is not None:
            add.text(tag, format_cap_datetime(moment))
    add.optional("senderName", info.sender_name)
    add.optional("headline", info.headline)
    add.optional("description", info.description)
    add.optional("instruction", info.instruction)
    add.optional("web", info.web)
    add.optional("contact", info.contact)
    for name, value in info.parameters:
        add.pair("parameter", name, value)
    for area in info.areas:
        add.open("area")
        add.text("areaDesc", area.description)
        add.pair("geocode", COUNTRY_GEOCODE, area.country_code.upper())
        add.close("area")
    add.close("info")


def render_atom_feed(
    *,
    feed_id: str,
    title: str,
    updated: datetime,
    self_url: str,
    entries: Sequence[AtomEntry],
    author: str = "Sentinel-NPS",
) -> str:
    """An Atom (RFC 4287) feed of CAP alerts, newest first as given.

    Each entry links to its CAP document with `<link rel="alternate"
    type="application/cap+xml">`, the form CAP aggregators (Google Public Alerts, the WMO
    Alert Hub) read from CAP Atom feeds; an entry with `cap_xml` also embeds the document in
    `<content type="application/cap+xml">` (RFC 4287 4.1.3.3: an XML media type's content is
    the element itself). Times are RFC 3339 in UTC.
    """
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<feed xmlns="{ATOM_NAMESPACE}">']
    add = _Writer(lines, depth=1)
    add.text("id", feed_id)
    add.text("title", title)
    add.text("updated", _atom_time(updated))
    add.empty("link", rel="self", type="application/atom+xml", href=self_url)
    add.open("author")
    add.text("name", author)
    add.close("author")
    for entry in entries:
        add.open("entry")
        add.text("id", entry.entry_id)
        add.text("title", entry.title)
        add.text("updated", _atom_time(entry.updated))
        if entry.published is not None:
            add.text("published", _atom_time(entry.published))
        add.empty("link", rel="alternate", type=CAP_MEDIA_TYPE, href=entry.cap_url)
        add.optional("summary", entry.summary)
        if entry.cap_xml is not None:
            add.raw(f'<content type="{CAP_MEDIA_TYPE}">{_cap_element(entry.cap_xml)}</content>')
        add.close("entry")
    lines.append("</feed>")
    return "\n".join(lines) + "\n"


def _atom_time(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("feed times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cap_element(cap_xml: str) -> str:
    """The <alert> element of a CAP document, without its XML declaration, checked to parse."""
    body = re.sub(r"^\s*<\?xml[^>]*\?>\s*", "", cap_xml).strip()
    if "<!DOCTYPE" in body:
        raise ValueError("a CAP document to embed must not have a DOCTYPE")
    root = ET.fromstring(body)
    if root.tag != f"{{{CAP_NAMESPACE}}}alert":
        raise ValueError(f"not a CAP 1.2 alert: root element {root.tag}")
    return body


class _Writer:
    """Appends indented, escaped elements to `lines`."""

    def __init__(self, lines: list[str], *, depth: int) -> None:
        self.lines = lines
        self.depth = depth

    def raw(self, markup: str) -> None:
        self.lines.append("  " * self.depth + markup)

    def text(self, tag: str, value: str) -> None:
        self.raw(f"<{tag}>{escape(_clean(value))}</{tag}>")

    def optional(self, tag: str, value: str) -> None:
        if value:
            self.text(tag, value)

    def pair(self, tag: str, name: str, value: str) -> None:
        self.open(tag)
        self.text("valueName", name)
        self.text("value", value)
        self.close(tag)

    def empty(self, tag: str, **attributes: str) -> None:
        rendered = " ".join(f"{name}={quoteattr(_clean(v))}" for name, v in attributes.items())
        self.raw(f"<{tag} {rendered}/>")

    def open(self, tag: str) -> None:
        self.raw(f"<{tag}>")
        self.depth += 1

    def close(self, tag: str) -> None:
        self.depth -= 1
        self.raw(f"</{tag}>")


def _clean(value: str) -> str:
    return _NOT_XML.sub("", value)
