"""CAP 1.2 documents and the Atom feed of published alerts."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

import pycountry
from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from alerts.cap import (
    AtomEntry,
    CapAlert,
    CapArea,
    CapInfo,
    render_atom_feed,
    render_cap,
    severity_for,
)
from alerts.levels import AlertLevel
from app.db import utc_now
from app.deps import AlertReader, Principal, ReadSessionDep
from app.inputs import RowId
from app.models import Alert, Subscriber
from app.models.enums import AlertStatus, ApiRole, SubscriberKind
from app.triage import service
from app.triage.service import subject_of

router = APIRouter(prefix="/v1", tags=["cap"])
CAP_MEDIA_TYPE = "application/cap+xml"
RESTRICTION = (
    "For members of the national early warning network on new psychoactive "
    "substances; not for public release."
)
_URGENCY = {
    AlertLevel.CRITICAL: "Immediate",
    AlertLevel.WARNING: "Expected",
    AlertLevel.ADVISORY: "Future",
    AlertLevel.INFO: "Future",
}


def _sender(public_url: str) -> str:
    return f"sentinel-nps@{urlsplit(public_url).hostname or 'localhost'}"


def _identifier(alert: Alert, version: int) -> str:
    return f"sentinel-nps-alert-{alert.id}-v{version}"


def cap_document(alert: Alert, *, public_url: str, law_enforcement: bool = False) -> CapAlert:
    """The alert as a CAP 1.2 message: Alert for its first version, then Update, and Cancel
    once resolved, each referring to the original message."""
    sender = _sender(public_url)
    subject = subject_of(alert)
    references: tuple[str, ...]
    if alert.version <= 1:
        msg_type, references, sent = "Alert", (), alert.published_at or alert.created_at
    else:
        msg_type = "Cancel" if alert.status is AlertStatus.RESOLVED else "Update"
        references = (
            f"{sender},{_identifier(alert, 1)},"
            f"{(alert.created_at).replace(microsecond=0).isoformat()}",
        )
        sent = alert.updated_at
    substance = alert.substance
    parameters: list[tuple[str, str]] = [
        ("level", alert.level.value),
        ("score", f"{alert.score:.1f}"),
        ("subject", subject["type"]),
    ]
    if substance is not None:
        parameters += [
            ("InChIKey", substance.inchikey),
            ("name", substance.name),
            ("chemical_group", substance.chemical_group.value),
            ("effect_group", substance.effect_group.value),
        ]
        parameters += [("synonym", synonym) for synonym in list(substance.synonyms)[:5]]
    elif alert.cluster is not None:
        parameters.append(("cluster_id", str(alert.cluster.id)))
        parameters.append(("representative_smiles", alert.cluster.representative_smiles))
        parameters += [
            ("nearest_reference", f"{n['name']} ({n['similarity']:.2f})")
            for n in alert.cluster.nearest[:3]
        ]
    areas = []
    for code in alert.countries or []:
        country = pycountry.countries.get(alpha_2=code)
        areas.append(CapArea(country_code=code, description=country.name if country else code))
    info = CapInfo(
        category=("Health", "Security") if law_enforcement else ("Health",),
        event=f"New psychoactive substance: {subject['name']}",
        urgency=_URGENCY[alert.level],
        severity=severity_for(alert.level),
        certainty="Observed" if substance is not None else "Likely",
        headline=alert.title,
        description=alert.summary,
        instruction="Review the detections and the score explanation in the Sentinel-NPS "
        "console; inform treatment and harm-reduction services as appropriate.",
        web=f"{public_url.rstrip('/')}/console/alerts/{alert.id}",
        parameters=tuple(parameters),
        areas=tuple(areas),
        sender_name="Sentinel-NPS national early warning system",
    )
    return CapAlert(
        identifier=_identifier(alert, alert.version),
        sender=sender,
        sent=sent,
        msg_type=msg_type,
        scope="Restricted",
        restriction=RESTRICTION,
        references=references,
        info=(info,),
    )


def _is_law_enforcement(request: Request, principal: Principal) -> bool:
    if principal.role is not ApiRole.SUBSCRIBER:
        return request.query_params.get("audience") == "law_enforcement"
    sessions = request.app.state.read_sessions
    with sessions.begin() as session:
        kinds = set(
            session.scalars(
                select(Subscriber.kind).where(
                    Subscriber.organisation_id == principal.organisation_id
                )
            )
        )
    return SubscriberKind.LAW_ENFORCEMENT in kinds


@router.get(
    "/alerts/{alert_id:int}/cap",
    response_class=Response,
    responses={
        200: {"content": {CAP_MEDIA_TYPE: {}}},
        404: {"description": "no such alert, or not one sent to this subscriber"},
    },
)
def alert_cap(
    alert_id: RowId, request: Request, session: ReadSessionDep, principal: AlertReader
) -> Response:
    """The alert as an OASIS CAP 1.2 document (category Security added for law enforcement)."""
    alert = service.get_alert(session, principal, alert_id)
    document = cap_document(
        alert,
        public_url=request.app.state.settings.public_url,
        law_enforcement=_is_law_enforcement(request, principal),
    )
    return Response(render_cap(document), media_type=CAP_MEDIA_TYPE)


@router.get(
    "/feeds/cap",
    response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}}},
)
def cap_feed(request: Request, session: ReadSessionDep, principal: AlertReader) -> Response:
    """Published alerts (and their updates and cancellations) as an Atom feed of CAP entries."""
    public_url = request.app.state.settings.public_url.rstrip("/")
    query = (
        select(Alert)
        .where(Alert.published_at.is_not(None))
        .options(selectinload(Alert.substance), selectinload(Alert.cluster))
        .order_by(Alert.updated_at.desc())
        .limit(200)
    )
    visible = session.scalars(service.visible(query, principal)).all()
    law_enforcement = _is_law_enforcement(request, principal)
    entries = []
    for alert in visible:
        document = cap_document(alert, public_url=public_url, law_enforcement=law_enforcement)
        entries.append(
            AtomEntry(
                entry_id=f"urn:sentinel-nps:{document.identifier}",
                title=alert.title,
                updated=alert.updated_at,
                published=alert.published_at,
                cap_url=f"{public_url}/v1/alerts/{alert.id}/cap",
                summary=alert.summary,
                cap_xml=render_cap(document),
            )
        )
    updated: datetime = max((alert.updated_at for alert in visible), default=utc_now())
    feed = render_atom_feed(
        feed_id=f"{public_url}/v1/feeds/cap",
        title="Sentinel-NPS published alerts",
        updated=updated,
        self_url=f"{public_url}/v1/feeds/cap",
        entries=entries,
    )
    return Response(feed, media_type="application/atom+xml")
