"""Detection intake, reads, corrections and withdrawals (labs see only their own)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import utc_now
from app.deps import Principal
from app.detections.schemas import DetectionCreate, DetectionUpdate, SubstanceInput
from app.enrichment import Enricher
from app.errors import ConflictError, FieldError, InvalidFieldsError, NotFoundError
from app.models import Detection, Substance
from app.models.enums import DetectionContext, DetectionStatus, SampleType
from app.problems import validation_errors
from chemistry.vocabulary import ChemicalGroup, EffectGroup


def _apply(
    detection: Detection, body: DetectionCreate, enricher: Enricher, session: Session
) -> None:
    """Set every stored field of `detection` from a validated body, enriching the substance."""
    kind, text = body.substance.kind_and_text
    enrichment = enricher.enrich(session, kind, text)
    enricher.store(session, enrichment)
    analysis = enrichment.contract()
    identity = enrichment.identity
    structure_changed = (detection.input_type, detection.input_text) != (
        enrichment.input_type,
        text,
    )
    detection.input_type = enrichment.input_type
    detection.input_text = text
    detection.smiles = identity.smiles if identity else None
    detection.inchikey = identity.inchikey if identity else None
    detection.formula = identity.formula if identity else None
    detection.exact_mass = identity.exact_mass if identity else None
    detection.fingerprint = enrichment.analysis.fingerprint if enrichment.analysis else None
    detection.substance_id = enrichment.substance_id
    group, effect = analysis["chemical_group"], analysis["effect_group"]
    detection.chemical_group = ChemicalGroup(group) if group else None
    detection.effect_group = EffectGroup(effect) if effect else None
    detection.effect_confidence = analysis["effect_confidence"]
    detection.enrichment = {
        key: analysis[key] for key in ("match", "nearest", "analogue_of", "generic_definitions")
    }
    detection.unidentified_name = enrichment.unidentified
    detection.detected_on = body.detected_on
    detection.country = body.country
    detection.region = body.region
    detection.sample_type = body.sample_type
    detection.context = body.context
    detection.technique = body.technique
    detection.purity_percent = body.purity_percent
    detection.quantity = body.quantity.value if body.quantity else None
    detection.quantity_unit = body.quantity.unit if body.quantity else None
    detection.co_detected = [item.model_dump(exclude_none=True) for item in body.co_detected]
    detection.lab_reference = body.lab_reference
    if structure_changed:
        cluster = enricher.cluster_for(session, enrichment)
        detection.cluster_id = cluster.id if cluster is not None else None


def _lab_reference_clash(
    session: Session, organisation_id: int, lab_reference: str | None, exclude_id: int | None = None
) -> int | None:
    if lab_reference is None:
        return None
    found: int | None = session.scalar(
        _CLASH if exclude_id is None else _CLASH_EXCEPT,
        {"organisation": organisation_id, "reference": lab_reference, "exclude": exclude_id},
    )
    return found


# On the table, not the mapped class: a plain Core statement, compiled once (every post with a
# lab_reference runs it).
_DETECTIONS = cast(Table, Detection.__table__)
_CLASH = select(_DETECTIONS.c.id).where(
    _DETECTIONS.c.organisation_id == bindparam("organisation"),
    _DETECTIONS.c.lab_reference == bindparam("reference"),
)
_CLASH_EXCEPT = _CLASH.where(_DETECTIONS.c.id != bindparam("exclude"))


def build(
    session: Session,
    principal: Principal,
    body: DetectionCreate,
    enricher: Enricher,
    *,
    import_key: str | None = None,
) -> Detection:
    """An enriched, unsaved detection (callers that batch inserts add and flush themselves)."""
    detection = Detection(organisation_id=_organisation(principal), import_key=import_key)
    _apply(detection, body, enricher, session)
    return detection


def create(
    session: Session,
    principal: Principal,
    body: DetectionCreate,
    enricher: Enricher,
    *,
    import_key: str | None = None,
) -> Detection:
    """Enrich and store one detection for the principal's organisation."""
    clash = _lab_reference_clash(session, _organisation(principal), body.lab_reference)
    if clash is not None:
        raise ConflictError(
            f"lab_reference {body.lab_reference!r} is already used by detection {clash}"
        )
    detection = build(session, principal, body, enricher, import_key=import_key)
    session.add(detection)
    try:
        session.flush()
    except IntegrityError as error:
        # Another request (another process, on PostgreSQL) stored this lab_reference after our
        # check above: the unique constraint decides, and the loser is a conflict, not a 500.
        if body.lab_reference is None:
            raise
        raise ConflictError(
            f"lab_reference {body.lab_reference!r} was just stored by another request"
        ) from error
    return detection


def _organisation(principal: Principal) -> int:
    if principal.organisation_id is None:
        raise ConflictError("only keys of an organisation can submit detections")
    return principal.organisation_id


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    index: int
    detection: Detection | None
    errors: list[FieldError]


def substances_of(records: list[Any]) -> list[tuple[str, str]]:
    """The (kind, text) of each record's substance that passes validation."""
    found: list[tuple[str, str]] = []
    for record in records:
        try:
            substance = SubstanceInput.model_validate(record.get("substance"))
        except (AttributeError, ValidationError):
            continue  # create_many reports it
        found.append(substance.kind_and_text)
    return found


def create_many(
    session: Session, principal: Principal, records: list[Any], enricher: Enricher
) -> list[RecordOutcome]:
    """Validate and store each record on its own: good ones are kept, bad ones reported.

    The rule is one multi-row INSERT: records are validated and enriched first, and a
    lab_reference already stored (or repeated within the batch) is rejected before anything is
    written. Only if the insert still fails (another request stored one of the lab_references
    in the meantime) is the batch redone record by record, each in a SAVEPOINT, so that the
    record that fails late is rolled back alone.
    """
    organisation_id = _organisation(principal)
    outcomes: dict[int, RecordOutcome] = {}
    valid: list[tuple[int, DetectionCreate]] = []
    for index, record in enumerate(records):
        try:
            valid.append((index, DetectionCreate.model_validate(record)))
        except ValidationError as error:
            outcomes[index] = RecordOutcome(index, None, validation_errors(error.errors()))
    references = {body.lab_reference for _, body in valid if body.lab_reference is not None}
    stored: dict[str, int] = {}
    if references:
        stored = {
            reference: detection_id
            for reference, detection_id in session.execute(
                select(Detection.lab_reference, Detection.id).where(
                    Detection.organisation_id == organisation_id,
                    Detection.lab_reference.in_(references),
                )
            )
            if reference is not None
        }
    enricher.prefetch(session, [body.substance.kind_and_text for _, body in valid])  # if not yet
    claimed: dict[str, int] = {}
    accepted: list[tuple[int, DetectionCreate]] = []
    for index, body in valid:
        reference = body.lab_reference
        if reference is not None and reference in stored:
            reason = f"lab_reference {reference!r} is already used by detection {stored[reference]}"
        elif reference is not None and reference in claimed:
            reason = f"lab_reference {reference!r} is already used by record {claimed[reference]}"
        else:
            if reference is not None:
                claimed[reference] = index
            accepted.append((index, body))
            continue
        outcomes[index] = RecordOutcome(index, None, [FieldError("lab_reference", reason)])
    try:
        with enricher.catalogue.savepoint(session):
            built: list[tuple[int, Detection]] = []
            for index, body in accepted:
                try:
                    built.append((index, build(session, principal, body, enricher)))
                except InvalidFieldsError as error:
                    outcomes[index] = RecordOutcome(index, None, error.errors)
            session.add_all([detection for _, detection in built])
            session.flush()
    except IntegrityError:
        # Lost a race for a lab_reference: redo these records one by one.
        for outcome in _create_each(session, principal, accepted, enricher):
            outcomes[outcome.index] = outcome
    else:
        for index, detection in built:
            outcomes[index] = RecordOutcome(index, detection, [])
    return [outcomes[index] for index in range(len(records))]


def _create_each(
    session: Session,
    principal: Principal,
    records: list[tuple[int, DetectionCreate]],
    enricher: Enricher,
) -> list[RecordOutcome]:
    """Store each record in a SAVEPOINT of its own; a record that fails is rolled back alone."""
    outcomes: list[RecordOutcome] = []
    for index, body in records:
        try:
            with enricher.catalogue.savepoint(session):
                detection = create(session, principal, body, enricher)
        except InvalidFieldsError as error:
            outcomes.append(RecordOutcome(index, None, error.errors))
        except ConflictError as error:
            outcomes.append(RecordOutcome(index, None, [FieldError("lab_reference", error.detail)]))
        except IntegrityError:
            outcomes.append(
                RecordOutcome(
                    index, None, [FieldError("lab_reference", "already used by another detection")]
                )
            )
        else:
            outcomes.append(RecordOutcome(index, detection, []))
    return outcomes


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


def get_own(session: Session, principal: Principal, detection_id: int) -> Detection:
    """A detection the principal's organisation submitted (only its lab may change it)."""
    detection = session.get(Detection, detection_id)
    if detection is None or detection.organisation_id != principal.organisation_id:
        raise NotFoundError(f"detection {detection_id} not found")
    return detection


def correct(
    session: Session,
    principal: Principal,
    detection_id: int,
    body: DetectionUpdate,
    enricher: Enricher,
) -> tuple[Detection, dict[str, Any]]:
    """Apply a lab's correction; return the detection and the changed fields (before, after)."""
    detection = get_own(session, principal, detection_id)
    if detection.status is DetectionStatus.WITHDRAWN:
        raise ConflictError(f"detection {detection_id} was withdrawn and cannot be corrected")
    before = view(detection)
    merged = _as_create_body(detection) | body.model_dump(exclude_unset=True)
    try:
        full = DetectionCreate.model_validate(merged)
    except ValidationError as error:
        raise InvalidFieldsError(validation_errors(error.errors())) from error
    clash = _lab_reference_clash(
        session, detection.organisation_id, full.lab_reference, exclude_id=detection.id
    )
    if clash is not None:
        raise ConflictError(f"lab_reference {full.lab_reference!r} is already used by {clash}")
    _apply(detection, full, enricher, session)
    detection.updated_at = utc_now()
    session.flush()
    after = view(detection)
    changes = {
        key: {"before": _jsonable(before[key]), "after": _jsonable(after[key])}
        for key in after
        if before.get(key) != after[key] and key != "updated_at"
    }
    return detection, changes


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _as_create_body(detection: Detection) -> dict[str, Any]:
    return {
        "substance": {detection.input_type.value: detection.input_text},
        "detected_on": detection.detected_on,
        "country": detection.country,
        "region": detection.region,
        "sample_type": detection.sample_type,
        "context": detection.context,
        "technique": detection.technique,
        "purity_percent": detection.purity_percent,
        "quantity": (
            {"value": detection.quantity, "unit": detection.quantity_unit}
            if detection.quantity is not None
            else None
        ),
        "co_detected": detection.co_detected,
        "lab_reference": detection.lab_reference,
    }


def withdraw(session: Session, principal: Principal, detection_id: int) -> Detection:
    """Withdraw a detection: it stays stored (history) but no longer counts anywhere."""
    detection = get_own(session, principal, detection_id)
    if detection.status is DetectionStatus.WITHDRAWN:
        raise ConflictError(f"detection {detection_id} is already withdrawn")
    detection.status = DetectionStatus.WITHDRAWN
    detection.withdrawn_at = utc_now()
    session.flush()
    return detection


@dataclass(frozen=True, slots=True)
class DetectionFilters:
    detected_from: date | None = None
    detected_to: date | None = None
    country: str | None = None
    chemical_group: ChemicalGroup | None = None
    substance: str | None = None  # InChIKey of the detection, or a reference name/synonym
    cluster_id: int | None = None
    sample_type: SampleType | None = None
    context: DetectionContext | None = None
    status: DetectionStatus | None = DetectionStatus.ACTIVE


def encode_cursor(detection_id: int) -> str:
    return base64.urlsafe_b64encode(f"d:{detection_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "d" or not value.isdigit():
            raise ValueError(cursor)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise InvalidFieldsError(
            [FieldError("query.cursor", "not a cursor from this API")]
        ) from error


def list_visible(
    session: Session,
    principal: Principal,
    filters: DetectionFilters,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Detection], str | None]:
    """Newest first; the next cursor is None on the last page."""
    from app.enrichment import resolve_name

    query: Select[Detection] = select(Detection).order_by(Detection.id.desc())
    if not principal.sees_all_detections:
        query = query.where(Detection.organisation_id == principal.organisation_id)
    if cursor is not None:
        query = query.where(Detection.id < decode_cursor(cursor))
    if filters.status is not None:
        query = query.where(Detection.status == filters.status)
    if filters.detected_from is not None:
        query = query.where(Detection.detected_on >= filters.detected_from)
    if filters.detected_to is not None:
        query = query.where(Detection.detected_on <= filters.detected_to)
    if filters.country is not None:
        query = query.where(Detection.country == filters.country.upper())
    if filters.chemical_group is not None:
        query = query.where(Detection.chemical_group == filters.chemical_group)
    if filters.cluster_id is not None:
        query = query.where(Detection.cluster_id == filters.cluster_id)
    if filters.sample_type is not None:
        query = query.where(Detection.sample_type == filters.sample_type)
    if filters.context is not None:
        query = query.where(Detection.context == filters.context)
    if filters.substance is not None:
        named: Substance | None = resolve_name(session, filters.substance)
        if named is not None:
            query = query.where(Detection.substance_id == named.id)
        else:
            query = query.where(Detection.inchikey == filters.substance.strip().upper())
    rows = list(session.scalars(query.limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


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
        "nearest": enrichment.get("nearest") or [],
        "analogue_of": enrichment.get("analogue_of") or [],
        "generic_definitions": enrichment.get("generic_definitions") or [],
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
        "withdrawn_at": detection.withdrawn_at,
    }
