"""Detection intake and reads, with object-level authorization (labs see only their own)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.deps import Principal
from app.detections.schemas import DetectionCreate
from app.enrichment import enrich
from app.errors import ConflictError, NotFoundError
from app.models import Detection
from app.models.enums import DetectionStatus


def create(session: Session, principal: Principal, body: DetectionCreate) -> Detection:
    """Enrich and store one detection for the principal's organisation."""
    assert principal.organisation_id is not None  # every API key belongs to an organisation
    kind, text = body.substance.kind_and_text
    enrichment = enrich(session, kind, text)
    if body.lab_reference is not None:
        clash = (
            session.query(Detection.id)
            .filter_by(organisation_id=principal.organisation_id, lab_reference=body.lab_reference)
            .first()
        )
        if clash is not None:
            raise ConflictError(
                f"lab_reference {body.lab_reference!r} is already used by detection {clash.id}"
            )
    identity = enrichment.identity
    analysis = enrichment.analysis
    detection = Detection(
        organisation_id=principal.organisation_id,
        input_type=enrichment.input_type,
        input_text=text,
        smiles=identity.smiles if identity else None,
        inchikey=identity.inchikey if identity else None,
        formula=identity.formula if identity else None,
        exact_mass=identity.exact_mass if identity else None,
        substance_id=enrichment.substance.id if enrichment.substance else None,
        chemical_group=analysis.get("chemical_group"),
        effect_group=analysis.get("effect_group"),
        effect_confidence=analysis.get("effect_confidence"),
        enrichment={
            "match": analysis.get("match"),
            "nearest": analysis.get("nearest", []),
            "analogue_of": analysis.get("analogue_of", []),
            "generic_definitions": analysis.get("generic_definitions", []),
        },
        unidentified_name=enrichment.unidentified,
        detected_on=body.detected_on,
        country=body.country,
        region=body.region,
        sample_type=body.sample_type,
        context=body.context,
        technique=body.technique,
        purity_percent=body.purity_percent,
        quantity=body.quantity.value if body.quantity else None,
        quantity_unit=body.quantity.unit if body.quantity else None,
        co_detected=[item.model_dump(exclude_none=True) for item in body.co_detected],
        lab_reference=body.lab_reference,
    )
    session.add(detection)
    session.flush()
    return detection


def get_visible(session: Session, principal: Principal, detection_id: int) -> Detection:
    """A detection the principal may see: officers and admins see all, labs only their own.

    Another lab's detection is reported as not found (404), not forbidden, so that labs cannot
    probe which ids exist.
    """
    detection = session.get(Detection, detection_id)
    if detection is None or (
        not principal.sees_all_detections and detection.organisation_id != principal.organisation_id
    ):
        raise NotFoundError(f"detection {detection_id} not found")
    return detection


def view(detection: Detection) -> dict[str, Any]:
    """The response shape: analysis contract keys plus stored fields."""
    enrichment = detection.enrichment or {}
    return {
        "id": detection.id,
        "status": detection.status.value,
        "input": detection.input_text,
        "input_type": detection.input_type.value,
        "smiles": detection.smiles,
        "inchikey": detection.inchikey,
        "formula": detection.formula,
        "exact_mass": detection.exact_mass,
        "chemical_group": detection.chemical_group.value if detection.chemical_group else None,
        "effect_group": detection.effect_group.value if detection.effect_group else None,
        "effect_confidence": detection.effect_confidence,
        "match": enrichment.get("match"),
        "nearest": enrichment.get("nearest", []),
        "analogue_of": enrichment.get("analogue_of", []),
        "generic_definitions": enrichment.get("generic_definitions", []),
        "unidentified": detection.unidentified_name,
        "cluster_id": detection.cluster_id,
        "organisation_id": detection.organisation_id,
        "detected_on": detection.detected_on,
        "country": detection.country,
        "region": detection.region,
        "sample_type": detection.sample_type.value,
        "context": detection.context.value if detection.context else None,
        "technique": detection.technique.value if detection.technique else None,
        "purity_percent": detection.purity_percent,
        "quantity": (
            {"value": detection.quantity, "unit": detection.quantity_unit}
            if detection.quantity is not None
            else None
        ),
        "co_detected": detection.co_detected,
        "lab_reference": detection.lab_reference,
        "created_at": detection.created_at,
        "updated_at": detection.updated_at,
    }


__all__ = ["DetectionStatus", "create", "get_visible", "view"]
