"""Check a CAP 1.2 document against the element rules of the OASIS CAP 1.2 specification.

Written from the specification's data dictionary (CAP-v1.2-os, section 3) and its
implementation notes, not from the XSD: element order and cardinality, the enumerated values,
the conditional rules (restriction for Restricted scope, addresses for Private, references for
Update/Cancel/Ack/Error), the dateTime form (3.3.2: `YYYY-MM-DDThh:mm:ssXzh:zm`, no "Z", UTC as
"-00:00"), the identifier/sender character rules, polygon, circle and value-pair shapes. It is
meant for the documents we render, not as a hardened parser of hostile input: a DOCTYPE is
refused before parsing, so no entity expansion happens.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from alerts.cap import CAP_NAMESPACE

_CheckFn = Callable[[str], str | None]
Rule = tuple[str, int, int | None]  # element name, minimum and maximum (None: unbounded) count

ALERT_ELEMENTS: tuple[Rule, ...] = (
    ("identifier", 1, 1),
    ("sender", 1, 1),
    ("sent", 1, 1),
    ("status", 1, 1),
    ("msgType", 1, 1),
    ("source", 0, 1),
    ("scope", 1, 1),
    ("restriction", 0, 1),
    ("addresses", 0, 1),
    ("code", 0, None),
    ("note", 0, 1),
    ("references", 0, 1),
    ("incidents", 0, 1),
    ("info", 0, None),
)
INFO_ELEMENTS: tuple[Rule, ...] = (
    ("language", 0, 1),
    ("category", 1, None),
    ("event", 1, 1),
    ("responseType", 0, None),
    ("urgency", 1, 1),
    ("severity", 1, 1),
    ("certainty", 1, 1),
    ("audience", 0, 1),
    ("eventCode", 0, None),
    ("effective", 0, 1),
    ("onset", 0, 1),
    ("expires", 0, 1),
    ("senderName", 0, 1),
    ("headline", 0, 1),
    ("description", 0, 1),
    ("instruction", 0, 1),
    ("web", 0, 1),
    ("contact", 0, 1),
    ("parameter", 0, None),
    ("resource", 0, None),
    ("area", 0, None),
)
RESOURCE_ELEMENTS: tuple[Rule, ...] = (
    ("resourceDesc", 1, 1),
    ("mimeType", 1, 1),
    ("size", 0, 1),
    ("uri", 0, 1),
    ("derefUri", 0, 1),
    ("digest", 0, 1),
)
AREA_ELEMENTS: tuple[Rule, ...] = (
    ("areaDesc", 1, 1),
    ("polygon", 0, None),
    ("circle", 0, None),
    ("geocode", 0, None),
    ("altitude", 0, 1),
    ("ceiling", 0, 1),
)
PAIR_ELEMENTS: tuple[Rule, ...] = (("valueName", 1, 1), ("value", 1, 1))

STATUS = frozenset({"Actual", "Exercise", "System", "Test", "Draft"})
MSG_TYPE = frozenset({"Alert", "Update", "Cancel", "Ack", "Error"})
SCOPE = frozenset({"Public", "Restricted", "Private"})
CATEGORY = frozenset(
    {"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra"}
    | {"CBRNE", "Other"}
)
RESPONSE_TYPE = frozenset(
    {"Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"}
)
URGENCY = frozenset({"Immediate", "Expected", "Future", "Past", "Unknown"})
SEVERITY = frozenset({"Extreme", "Severe", "Moderate", "Minor", "Unknown"})
CERTAINTY = frozenset({"Observed", "Likely", "Possible", "Unlikely", "Unknown"})
REFERRING_MSG_TYPES = frozenset({"Update", "Cancel", "Ack", "Error"})

_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
_LANGUAGE = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$")  # RFC 3066 tag
_DECIMAL = r"[-+]?\d+(?:\.\d+)?"
_POINT = re.compile(rf"^({_DECIMAL}),({_DECIMAL})$")


def validate_cap(xml: str) -> list[str]:
    """Problems found in a CAP 1.2 document, each as "path: what is wrong"; empty when valid."""
    if "<!DOCTYPE" in xml:
        return ["document: a DOCTYPE is not allowed in a CAP message"]
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        return [f"document: not well-formed XML ({error})"]
    if root.tag != _tag("alert"):
        return [f"document: root element must be {{{CAP_NAMESPACE}}}alert, not {root.tag}"]
    problems: list[str] = []
    alert = _children(root, "alert", ALERT_ELEMENTS, problems)
    for name in ("identifier", "sender"):
        for element in alert[name]:
            _check_token(_text(element), f"alert/{name}", problems)
    _check_each(alert["sent"], "alert/sent", _datetime_problem, problems)
    _check_each(alert["status"], "alert/status", _enum(STATUS), problems)
    _check_each(alert["msgType"], "alert/msgType", _enum(MSG_TYPE), problems)
    _check_each(alert["scope"], "alert/scope", _enum(SCOPE), problems)
    scope = _first_text(alert["scope"])
    msg_type = _first_text(alert["msgType"])
    if scope == "Restricted" and not _first_text(alert["restriction"]):
        problems.append("alert/restriction: required when scope is Restricted")
    if scope == "Private" and not _first_text(alert["addresses"]):
        problems.append("alert/addresses: required when scope is Private")
    references = _first_text(alert["references"])
    if msg_type in REFERRING_MSG_TYPES and not references:
        problems.append(f"alert/references: required when msgType is {msg_type}")
    for reference in references.split():
        _check_reference(reference, problems)
    for index, info in enumerate(alert["info"], start=1):
        _check_info(info, f"alert/info[{index}]", problems)
    return problems


def _check_info(info: ET.Element, path: str, problems: list[str]) -> None:
    found = _children(info, path, INFO_ELEMENTS, problems)
    _check_each(
        found["language"], f"{path}/language", _pattern(_LANGUAGE, "an RFC 3066 tag"), problems
    )
    _check_each(found["category"], f"{path}/category", _enum(CATEGORY), problems)
    _check_each(found["event"], f"{path}/event", _non_empty, problems)
    _check_each(found["responseType"], f"{path}/responseType", _enum(RESPONSE_TYPE), problems)
    _check_each(found["urgency"], f"{path}/urgency", _enum(URGENCY), problems)
    _check_each(found["severity"], f"{path}/severity", _enum(SEVERITY), problems)
    _check_each(found["certainty"], f"{path}/certainty", _enum(CERTAINTY), problems)
    for name in ("effective", "onset", "expires"):
        _check_each(found[name], f"{path}/{name}", _datetime_problem, problems)
    _check_each(found["web"], f"{path}/web", _absolute_uri, problems)
    for name in ("eventCode", "parameter"):
        for index, pair in enumerate(found[name], start=1):
            _children(pair, f"{path}/{name}[{index}]", PAIR_ELEMENTS, problems)
    for index, resource in enumerate(found["resource"], start=1):
        where = f"{path}/resource[{index}]"
        parts = _children(resource, where, RESOURCE_ELEMENTS, problems)
        _check_each(parts["mimeType"], f"{where}/mimeType", _non_empty, problems)
        _check_each(
            parts["size"], f"{where}/size", _pattern(re.compile(r"^\d+$"), "an integer"), problems
        )
        _check_each(parts["uri"], f"{where}/uri", _absolute_uri, problems)
    for index, area in enumerate(found["area"], start=1):
        _check_area(area, f"{path}/area[{index}]", problems)


def _check_area(area: ET.Element, path: str, problems: list[str]) -> None:
    found = _children(area, path, AREA_ELEMENTS, problems)
    _check_each(found["areaDesc"], f"{path}/areaDesc", _non_empty, problems)
    _check_each(found["polygon"], f"{path}/polygon", _polygon_problem, problems)
    _check_each(found["circle"], f"{path}/circle", _circle_problem, problems)
    for index, geocode in enumerate(found["geocode"], start=1):
        _children(geocode, f"{path}/geocode[{index}]", PAIR_ELEMENTS, problems)
    number = _pattern(re.compile(rf"^{_DECIMAL}$"), "a decimal number")
    _check_each(found["altitude"], f"{path}/altitude", number, problems)
    _check_each(found["ceiling"], f"{path}/ceiling", number, problems)
    if found["ceiling"] and not found["altitude"]:
        problems.append(f"{path}/ceiling: only allowed together with altitude")


def _children(
    parent: ET.Element, path: str, rules: tuple[Rule, ...], problems: list[str]
) -> dict[str, list[ET.Element]]:
    """Group the children by name, reporting unknown, misplaced, missing and repeated ones."""
    names = [name for name, _, _ in rules]
    found: dict[str, list[ET.Element]] = {name: [] for name in names}
    position = 0
    for child in parent:
        if not isinstance(child.tag, str):  # a comment or processing instruction
            continue
        local = child.tag.removeprefix(f"{{{CAP_NAMESPACE}}}")
        if local == child.tag:
            problems.append(f"{path}: element {child.tag} is not in the CAP 1.2 namespace")
            continue
        if local not in found:
            problems.append(f"{path}: unexpected element <{local}>")
            continue
        index = names.index(local)
        if index < position:
            problems.append(f"{path}/{local}: out of order (must come before <{names[position]}>)")
        position = max(position, index)
        found[local].append(child)
    for name, least, most in rules:
        count = len(found[name])
        if count < least:
            problems.append(f"{path}/{name}: required element is missing")
        if most is not None and count > most:
            problems.append(f"{path}/{name}: occurs {count} times, at most {most} allowed")
    return found


def _check_each(
    elements: list[ET.Element],
    path: str,
    check: _CheckFn,
    problems: list[str],
) -> None:
    for element in elements:
        problem = check(_text(element))
        if problem:
            problems.append(f"{path}: {problem}")


def _enum(allowed: frozenset[str]) -> _CheckFn:
    def check(value: str) -> str | None:
        if value in allowed:
            return None
        return f"{value!r} is not one of {', '.join(sorted(allowed))}"

    return check


def _pattern(pattern: re.Pattern[str], what: str) -> _CheckFn:
    def check(value: str) -> str | None:
        return None if pattern.match(value) else f"{value!r} is not {what}"

    return check


def _non_empty(value: str) -> str | None:
    return None if value else "must not be empty"


def _datetime_problem(value: str) -> str | None:
    """CAP 1.2 3.3.2: the dateTime form with a numeric zone; "Z" is forbidden; UTC is -00:00."""
    if value.endswith(("Z", "z")):
        return f"{value!r} uses 'Z'; CAP 1.2 requires a numeric offset, '-00:00' for UTC"
    if not _DATETIME.match(value):
        return f"{value!r} is not YYYY-MM-DDThh:mm:ss+hh:mm (no fractional seconds)"
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return f"{value!r} is not a valid date and time"
    if value.endswith("+00:00"):
        return f"{value!r}: CAP 1.2 requires UTC to be written '-00:00'"
    return None


def _absolute_uri(value: str) -> str | None:
    parts = urlsplit(value)
    return (
        None
        if parts.scheme and (parts.netloc or parts.path)
        else f"{value!r} is not an absolute URI"
    )


def _polygon_problem(value: str) -> str | None:
    points = value.split()
    if len(points) < 4:
        return "a polygon needs at least 4 points"
    if points[0] != points[-1]:
        return "a polygon's first and last points must be the same"
    bad = next((point for point in points if _point_problem(point)), None)
    return None if bad is None else _point_problem(bad)


def _circle_problem(value: str) -> str | None:
    parts = value.split()
    if len(parts) != 2 or not re.match(rf"^{_DECIMAL}$", parts[1]):
        return f"{value!r} is not 'latitude,longitude radius'"
    return _point_problem(parts[0])


def _point_problem(point: str) -> str | None:
    match = _POINT.match(point)
    if match is None:
        return f"{point!r} is not 'latitude,longitude'"
    latitude, longitude = float(match.group(1)), float(match.group(2))
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return f"{point!r} is outside WGS 84 latitude/longitude ranges"
    return None


def _check_token(value: str, path: str, problems: list[str]) -> None:
    """identifier and sender: non-empty, no spaces, commas or the restricted characters < &."""
    if not value:
        problems.append(f"{path}: must not be empty")
    elif re.search(r"[\s,<&]", value):
        problems.append(f"{path}: {value!r} must not contain spaces, commas, '<' or '&'")


def _check_reference(reference: str, problems: list[str]) -> None:
    parts = reference.split(",")
    if len(parts) != 3 or not all(parts):
        problems.append(f"alert/references: {reference!r} is not 'sender,identifier,sent'")
        return
    problem = _datetime_problem(parts[2])
    if problem:
        problems.append(f"alert/references: {problem}")


def _tag(local: str) -> str:
    return f"{{{CAP_NAMESPACE}}}{local}"


def _text(element: ET.Element) -> str:
    return (element.text or "").strip()


def _first_text(elements: list[ET.Element]) -> str:
    return _text(elements[0]) if elements else ""
