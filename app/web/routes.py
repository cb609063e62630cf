"""The officer's triage pages: the alert queue, the alert page and the triage actions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from app import audit
from app.db import utc_now
from app.deps import ReadSessionDep, SessionDep, client_address
from app.errors import ConflictError, InvalidFieldsError, NotFoundError
from app.models import Alert
from app.models.enums import AlertStatus, SubjectType
from app.triage import service as triage
from app.web import queue, subjects
from app.web.auth import CheckedUser, ConsoleUser, CurrentUser, PageError
from app.web.charts import meter, score_bar
from app.web.deliveries import deliveries
from app.web.templating import render
from chemistry.vocabulary import ChemicalGroup

router = APIRouter(prefix="/console", include_in_schema=False)

Action = Literal["acknowledge", "escalate", "dismiss", "publish", "resolve"]
ACTION_LABELS = {
    "acknowledge": "Acknowledge",
    "escalate": "Escalate",
    "publish": "Publish",
    "dismiss": "Dismiss",
    "resolve": "Resolve",
}
DONE_MESSAGES = {
    "acknowledge": "Alert acknowledged.",
    "review": "Published alert marked as reviewed.",
    "escalate": "Alert escalated.",
    "dismiss": "Alert dismissed; it stays closed unless the subject reaches a higher level.",
    "publish": "Alert published to subscribers.",
    "resolve": "Alert resolved.",
}


# ---- the queue ----------------------------------------------------------------------------


@router.get("/alerts")
def alert_queue(request: Request, session: ReadSessionDep, user: CurrentUser) -> Response:
    params = {key: value for key, value in request.query_params.items()}
    filters = queue.QueueFilters.parse(params)
    rows, truncated = queue.load_queue(session, filters)
    return render(
        request,
        "queue.html",
        {
            "rows": rows,
            "truncated": truncated,
            "filters": filters,
            "counts": triage.open_counts(session),
            "countries": queue.open_countries(session),
            "groups": [g.value for g in ChemicalGroup],
            "statuses": [s.value for s in AlertStatus],
            "subject_types": [t.value for t in SubjectType],
            "score_bar": score_bar,
            "now": utc_now(),
        },
        user=user,
    )


# ---- alert detail and actions -------------------------------------------------------------


def _allowed_actions(alert: Alert) -> dict[str, bool]:
    """Which actions the triage service accepts for the alert's status."""
    status = alert.status
    triaging = status in (AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED)
    return {
        "acknowledge": status is AlertStatus.NEW
        or (status is AlertStatus.PUBLISHED and alert.needs_review),
        "escalate": status in (AlertStatus.NEW, AlertStatus.ACKNOWLEDGED),
        "publish": triaging,
        "dismiss": triaging,
        "resolve": triaging or status is AlertStatus.PUBLISHED,
    }


def _get_alert(
    session: Session, user: ConsoleUser, alert_id: int, *, for_update: bool = False
) -> Alert:
    try:
        return triage.get_alert(session, user.principal, alert_id, for_update=for_update)
    except NotFoundError as error:
        raise PageError(f"There is no alert {alert_id}.", 404) from error


def _alert_context(request: Request, session: Session, alert: Alert) -> dict[str, Any]:
    today = utc_now().date()
    name, unidentified = queue.subject_name(alert)
    inchikey, group = queue.subject_structure(alert)
    if alert.substance is not None:
        where = subjects.of_substance(alert.substance.id)
        neighbours = subjects.substance_neighbours(
            session, subjects.analyser_for(request, session), alert.substance
        )
        members: list[subjects.Member] = []
    else:
        assert alert.cluster_id is not None
        where = subjects.of_cluster(alert.cluster_id)
        neighbours = subjects.cluster_neighbours(session, alert.cluster) if alert.cluster else []
        members = subjects.cluster_members(session, alert.cluster) if alert.cluster else []
    components = sorted(
        (
            {**c, "points": float(c.get("value", 0)) * float(c.get("weight", 0))}
            for c in alert.components or []
        ),
        key=lambda c: c["points"],
        reverse=True,
    )
    max_weight = max((float(c.get("weight", 0)) for c in components), default=0.0)
    chart, _ = subjects.score_chart(session, alert.subject_key, request.app.state.settings)
    return {
        "alert": alert,
        "name": name,
        "unidentified": unidentified,
        "inchikey": inchikey,
        "group": group,
        "neighbours": neighbours,
        "members": members,
        "components": components,
        "max_weight": max_weight,
        "meter": meter,
        "activity": subjects.activity(session, where, today=today),
        "score_chart": chart,
        "detections": subjects.recent_detections(session, where, limit=15),
        "deliveries": deliveries(session, alert_id=alert.id),
        "events": list(reversed(alert.events)),
        "allowed": _allowed_actions(alert),
        "action_labels": ACTION_LABELS,
        "now": utc_now(),
    }


@router.get("/alerts/{alert_id}")
def alert_detail(
    alert_id: int,
    request: Request,
    session: ReadSessionDep,
    user: CurrentUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    alert = _get_alert(session, user, alert_id)
    context = _alert_context(request, session, alert)
    context["done"] = DONE_MESSAGES.get(done or "")
    if done == "publish":
        context["done"] += f" {len(context['deliveries'])} deliveries in the outbox."
    return render(request, "alert.html", context, user=user)


@router.post("/alerts/{alert_id}/{action}")
def act_on_alert(
    alert_id: int,
    action: Action,
    request: Request,
    session: SessionDep,
    user: CheckedUser,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """One triage action, in the same service and audit trail as the API's (and, as there, with
    the alert's row locked, so that two officers acting at once take turns)."""
    alert = _get_alert(session, user, alert_id, for_update=True)
    reviewing = action == "acknowledge" and alert.status is AlertStatus.PUBLISHED
    try:
        triage.ACTIONS[action](session, alert, actor=user.email, note=note.strip())
    except (ConflictError, InvalidFieldsError) as error:
        context = _alert_context(request, session, alert)
        context["action_error"] = error.detail.replace("note: ", "")
        context["failed_action"] = action
        status = 409 if isinstance(error, ConflictError) else 422
        return render(request, "alert.html", context, user=user, status=status)
    audit.record(
        session,
        user.principal,
        f"alert.{action}",
        "alert",
        alert.id,
        client_address=client_address(request),
        detail={"note": note.strip(), "via": "console"},
    )
    done = "review" if reviewing else action
    return RedirectResponse(f"/console/alerts/{alert.id}?done={done}", status_code=303)
