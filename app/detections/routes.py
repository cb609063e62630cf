"""Detection API: labs post, read, correct and withdraw their own; officers read all."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from app import audit
from app.deps import DetectionReader, LabKey, Principal, ReadSessionDep, SessionDep, client_address
from app.detections import idempotency, service
from app.detections.schemas import (
    BatchResult,
    DetectionBatch,
    DetectionCreate,
    DetectionPage,
    DetectionRead,
    DetectionUpdate,
)
from app.enrichment import Enricher
from app.inputs import IsoDate, RowId, RowIdFilter
from app.models.enums import DetectionContext, DetectionStatus, SampleType
from app.settings import Settings
from chemistry.vocabulary import ChemicalGroup

router = APIRouter(prefix="/v1/detections", tags=["detections"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="retry-safe key, scoped to your lab, kept 48 h",
        min_length=1,
        max_length=idempotency.MAX_KEY_LENGTH,
    ),
]


def _enricher(request: Request) -> Enricher:
    enricher: Enricher = request.app.state.enricher
    return enricher


def _enrich_ahead(request: Request, inputs: list[tuple[str, str]]) -> None:
    """Enrich the substances in a read-only session before the write transaction opens, so that
    the transaction (on SQLite: the database's one write lock) never waits on the chemistry;
    inside it, `Enricher.enrich` finds them cached."""
    enricher = _enricher(request)
    if enricher.all_cached(inputs):
        return
    read_sessions: sessionmaker[Session] = request.app.state.read_sessions
    with read_sessions.begin() as session:
        enricher.prefetch(session, inputs)


def _idempotent(
    request: Request,
    lab: Principal,
    key: str | None,
    body: Any,
    status_code: int,
    model: type[BaseModel],
    work: Callable[[Session], dict[str, Any]],
) -> JSONResponse:
    """Run `work` in one transaction, replaying the first response for a repeated key."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    settings: Settings = request.app.state.settings
    organisation_id = lab.organisation_id
    assert organisation_id is not None
    reservation: idempotency.Reservation | None = None
    if key is not None:
        held = idempotency.reserve(
            sessions,
            organisation_id,
            key,
            f"POST {request.url.path}",
            idempotency.request_hash(f"POST {request.url.path}", body),
            timeout=timedelta(seconds=settings.idempotency_reservation_seconds),
        )
        if isinstance(held, idempotency.Replay):
            return JSONResponse(
                held.body,
                status_code=held.status_code,
                headers={"Idempotency-Replayed": "true"},
            )
        reservation = held
    try:
        with sessions.begin() as session:
            payload = model.model_validate(work(session)).model_dump(mode="json")
            if reservation is not None:
                idempotency.complete(session, reservation, status_code, payload)
    except BaseException:
        if reservation is not None:
            idempotency.release(sessions, reservation)
        raise
    return JSONResponse(payload, status_code=status_code)


@router.post(
    "",
    status_code=201,
    response_model=DetectionRead,
    responses={
        409: {
            "description": "lab_reference already used, or a concurrent "
            "request with the same Idempotency-Key"
        }
    },
)
def create_detection(
    body: DetectionCreate, request: Request, lab: LabKey, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Post one detection; it is enriched (identity, match, groups, flags, cluster) and stored."""

    _enrich_ahead(request, [body.substance.kind_and_text])

    def work(session: Session) -> dict[str, Any]:
        detection = service.create(session, lab, body, _enricher(request))
        audit.record(
            session,
            lab,
            "detection.create",
            "detection",
            detection.id,
            client_address=client_address(request),
        )
        return service.view(detection)

    return _idempotent(
        request, lab, idempotency_key, body.model_dump(mode="json"), 201, DetectionRead, work
    )


@router.post(
    "/batch",
    response_model=BatchResult,
    responses={409: {"description": "a concurrent request with the same Idempotency-Key"}},
)
def create_detections(
    body: DetectionBatch, request: Request, lab: LabKey, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Post up to 1,000 detections. Each record is accepted (stored) or rejected (with its
    errors) on its own; the answer lists one result per record, in input order, and counts."""

    _enrich_ahead(request, service.substances_of(body.detections))

    def work(session: Session) -> dict[str, Any]:
        outcomes = service.create_many(session, lab, body.detections, _enricher(request))
        accepted = [outcome for outcome in outcomes if outcome.detection is not None]
        audit.record(
            session,
            lab,
            "detection.batch",
            "detection",
            None,
            client_address=client_address(request),
            detail={
                "accepted": len(accepted),
                "rejected": len(outcomes) - len(accepted),
                "ids": [o.detection.id for o in accepted if o.detection],
            },
        )
        return {
            "accepted": len(accepted),
            "rejected": len(outcomes) - len(accepted),
            "results": [
                {
                    "index": o.index,
                    "status": "accepted",
                    "detection": service.view(o.detection),
                    "errors": [],
                }
                if o.detection is not None
                else {
                    "index": o.index,
                    "status": "rejected",
                    "detection": None,
                    "errors": [{"field": e.field, "reason": e.reason} for e in o.errors],
                }
                for o in outcomes
            ],
        }

    return _idempotent(
        request, lab, idempotency_key, body.model_dump(mode="json"), 200, BatchResult, work
    )


@router.get("", response_model=DetectionPage)
def list_detections(
    session: ReadSessionDep,
    reader: DetectionReader,
    detected_from: IsoDate | None = None,
    detected_to: IsoDate | None = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    chemical_group: ChemicalGroup | None = None,
    substance: Annotated[
        str | None, Query(max_length=300, description="InChIKey, name or synonym")
    ] = None,
    cluster_id: RowIdFilter = None,
    sample_type: SampleType | None = None,
    context: DetectionContext | None = None,
    status: DetectionStatus | None = DetectionStatus.ACTIVE,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """Detections newest first; labs see their own, officers all. Follow next_cursor to page."""
    filters = service.DetectionFilters(
        detected_from=detected_from,
        detected_to=detected_to,
        country=country,
        chemical_group=chemical_group,
        substance=substance,
        cluster_id=cluster_id,
        sample_type=sample_type,
        context=context,
        status=status,
    )
    rows, next_cursor = service.list_visible(session, reader, filters, limit=limit, cursor=cursor)
    return {"items": [service.view(row) for row in rows], "next_cursor": next_cursor}


@router.get(
    "/{detection_id:int}",
    response_model=DetectionRead,
    responses={404: {"description": "no such detection, or not one this key may see"}},
)
def read_detection(
    detection_id: RowId, session: ReadSessionDep, reader: DetectionReader
) -> dict[str, Any]:
    return service.view(service.get_visible(session, reader, detection_id))


@router.patch(
    "/{detection_id:int}",
    response_model=DetectionRead,
    responses={
        404: {"description": "no such detection of your lab"},
        409: {"description": "withdrawn, or lab_reference already used"},
    },
)
def correct_detection(
    detection_id: RowId, body: DetectionUpdate, request: Request, session: SessionDep, lab: LabKey
) -> dict[str, Any]:
    """Correct your lab's detection; the change is audited with the fields before and after."""
    detection, changes = service.correct(session, lab, detection_id, body, _enricher(request))
    audit.record(
        session,
        lab,
        "detection.correct",
        "detection",
        detection.id,
        client_address=client_address(request),
        detail={"changes": changes},
    )
    return service.view(detection)


@router.delete(
    "/{detection_id:int}",
    response_model=DetectionRead,
    responses={
        404: {"description": "no such detection of your lab"},
        409: {"description": "already withdrawn"},
    },
)
def withdraw_detection(
    detection_id: RowId, request: Request, session: SessionDep, lab: LabKey
) -> dict[str, Any]:
    """Withdraw your lab's detection: it is kept, marked withdrawn, and no longer counted."""
    detection = service.withdraw(session, lab, detection_id)
    audit.record(
        session,
        lab,
        "detection.withdraw",
        "detection",
        detection.id,
        client_address=client_address(request),
    )
    return service.view(detection)
