"""Detection API: labs post detections and read their own; officers read all."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app import audit
from app.deps import DetectionReader, LabKey, ReadSessionDep, SessionDep, client_address
from app.detections import service
from app.detections.schemas import DetectionCreate, DetectionRead

router = APIRouter(prefix="/v1/detections", tags=["detections"])


@router.post("", status_code=201, response_model=DetectionRead)
def create_detection(
    body: DetectionCreate, request: Request, session: SessionDep, lab: LabKey
) -> dict[str, Any]:
    detection = service.create(session, lab, body)
    audit.record(
        session,
        lab,
        "detection.create",
        "detection",
        detection.id,
        client_address=client_address(request),
    )
    return service.view(detection)


@router.get("/{detection_id}", response_model=DetectionRead)
def read_detection(
    detection_id: int, session: ReadSessionDep, reader: DetectionReader
) -> dict[str, Any]:
    return service.view(service.get_visible(session, reader, detection_id))
