"""Alert API: officers triage alerts; subscribers read what they were sent."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request
from starlette.convertors import Convertor, register_url_convertor

from alerts.levels import AlertLevel
from app import audit
from app.deps import AlertReader, CurrentOfficer, ReadSessionDep, SessionDep, client_address
from app.errors import NotFoundError
from app.inputs import IsoDateTime, RowId
from app.models.enums import AlertStatus, ApiRole
from app.scoring.facts import cluster_key, substance_key
from app.triage import service
from app.triage.schemas import AlertAction, AlertDetail, AlertPage, ScorePoint

router = APIRouter(prefix="/v1", tags=["alerts"])


@router.get("/alerts", response_model=AlertPage)
def list_alerts(
    session: ReadSessionDep,
    principal: AlertReader,
    status: AlertStatus | None = None,
    level: AlertLevel | None = None,
    since: IsoDateTime | None = None,
    open_only: Annotated[
        bool, Query(description="only open alerts when no status is given")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Alerts by level then score, highest first. Officers see all; subscribers what they got."""
    alerts = service.list_alerts(
        session,
        principal,
        status=status,
        level=level,
        since=since,
        open_only=open_only,
        limit=limit,
    )
    counts = service.open_counts(session) if principal.role is not ApiRole.SUBSCRIBER else {}
    return {"items": [service.view(alert) for alert in alerts], "counts": counts}


@router.get(
    "/alerts/{alert_id:int}",
    response_model=AlertDetail,
    responses={404: {"description": "no such alert, or not one sent to this subscriber"}},
)
def read_alert(alert_id: RowId, session: ReadSessionDep, principal: AlertReader) -> dict[str, Any]:
    return service.view(service.get_alert(session, principal, alert_id), history=True)


Action = Literal["acknowledge", "escalate", "dismiss", "publish", "resolve"]


class _ActionConvertor(Convertor[str]):
    """Matches only the action names, so that /alerts/{id}/cap is not taken for an action:
    POST there is a 405 naming GET, not a 422 about an unknown action."""

    regex = "|".join(get_args(Action))

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("alert_action", _ActionConvertor())


@router.post(
    "/alerts/{alert_id:int}/{action:alert_action}",
    response_model=AlertDetail,
    responses={
        404: {"description": "no such alert"},
        409: {"description": "the alert's status does not allow this action"},
    },
)
def act_on_alert(
    alert_id: RowId,
    action: Action,
    body: AlertAction,
    request: Request,
    session: SessionDep,
    officer: CurrentOfficer,
) -> dict[str, Any]:
    """acknowledge, escalate, dismiss (note = reason, required), publish (sends to subscribers)
    or resolve an alert; each action is recorded in its history and in the audit log."""
    alert = service.get_alert(session, officer, alert_id, for_update=True)
    service.ACTIONS[action](session, alert, actor=officer.actor, note=body.note)
    audit.record(
        session,
        officer,
        f"alert.{action}",
        "alert",
        alert.id,
        client_address=client_address(request),
        detail={"note": body.note},
    )
    session.flush()
    session.refresh(alert, attribute_names=["events"])
    return service.view(alert, history=True)


@router.get(
    "/substances/{inchikey}/scores",
    response_model=list[ScorePoint],
    responses={404: {"description": "no scores for this substance"}},
)
def substance_scores(
    inchikey: str, session: ReadSessionDep, officer: CurrentOfficer
) -> list[dict[str, Any]]:
    """The substance's daily threat score history with its components."""
    points = service.score_history(session, substance_key(inchikey.upper()))
    if not points:
        raise NotFoundError(f"no scores for substance {inchikey}")
    return points


@router.get(
    "/clusters/{cluster_id:int}/scores",
    response_model=list[ScorePoint],
    responses={404: {"description": "no scores for this cluster"}},
)
def cluster_scores(
    cluster_id: RowId, session: ReadSessionDep, officer: CurrentOfficer
) -> list[dict[str, Any]]:
    points = service.score_history(session, cluster_key(cluster_id))
    if not points:
        raise NotFoundError(f"no scores for cluster {cluster_id}")
    return points
