"""Detections posted by labs, the clusters they form, and idempotency records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utc_now
from app.models.enums import (
    DetectionContext,
    DetectionStatus,
    InputType,
    SampleType,
    Technique,
)
from app.models.substance import Substance
from chemistry.vocabulary import ChemicalGroup, EffectGroup, PotencyTier


class Cluster(Base):
    """A family of unidentified structures that are similar to one representative."""

    __tablename__ = "cluster"

    id: Mapped[int] = mapped_column(primary_key=True)
    representative_smiles: Mapped[str] = mapped_column(Text)
    representative_inchikey: Mapped[str] = mapped_column(String(27))
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint_spec: Mapped[str] = mapped_column(String(100))
    chemical_group: Mapped[ChemicalGroup | None]
    effect_group: Mapped[EffectGroup | None]
    # From the representative's analysis: the nearest references drive a cluster's harm score.
    potency_tier: Mapped[PotencyTier] = mapped_column(default=PotencyTier.UNKNOWN)
    potent_similarity: Mapped[float] = mapped_column(default=0.0)
    controlled_analogue: Mapped[bool] = mapped_column(default=False)
    nearest: Mapped[list[Any]] = mapped_column(default=list)  # [{name, inchikey, similarity}]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Detection(Base):
    __tablename__ = "detection"
    __table_args__ = (
        UniqueConstraint("organisation_id", "lab_reference"),
        UniqueConstraint("organisation_id", "import_key"),
        Index("ix_detection_detected_on", "detected_on"),
        Index("ix_detection_inchikey", "inchikey"),
        Index("ix_detection_substance_day", "substance_id", "detected_on"),
        Index("ix_detection_cluster_day", "cluster_id", "detected_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    status: Mapped[DetectionStatus] = mapped_column(default=DetectionStatus.ACTIVE)
    input_type: Mapped[InputType]
    input_text: Mapped[str] = mapped_column(Text)
    # Identity of the standardised structure (null when only an unknown name was reported).
    smiles: Mapped[str | None] = mapped_column(Text)
    inchikey: Mapped[str | None] = mapped_column(String(27))
    formula: Mapped[str | None] = mapped_column(String(100))
    exact_mass: Mapped[float | None]
    fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Enrichment.
    substance_id: Mapped[int | None] = mapped_column(ForeignKey("substance.id"))
    nearest_substance_id: Mapped[int | None] = mapped_column(ForeignKey("substance.id"))
    nearest_similarity: Mapped[float | None]
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("cluster.id"))
    chemical_group: Mapped[ChemicalGroup | None]
    effect_group: Mapped[EffectGroup | None]
    effect_confidence: Mapped[float | None]
    enrichment: Mapped[dict[str, Any]] = mapped_column(default=dict)  # nearest, flags, as analysed
    unidentified_name: Mapped[bool] = mapped_column(default=False)
    # Where, when, what.
    detected_on: Mapped[date]
    country: Mapped[str] = mapped_column(String(2), index=True)
    region: Mapped[str | None] = mapped_column(String(6))
    sample_type: Mapped[SampleType]
    context: Mapped[DetectionContext | None]
    technique: Mapped[Technique | None]
    purity_percent: Mapped[float | None]
    quantity: Mapped[float | None]
    quantity_unit: Mapped[str | None] = mapped_column(String(10))
    co_detected: Mapped[list[Any]] = mapped_column(default=list)
    lab_reference: Mapped[str | None] = mapped_column(String(100))
    # Bulk import's identity of a row without lab_reference (content hash + occurrence), so that
    # re-running an import creates no duplicates.
    import_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
    withdrawn_at: Mapped[datetime | None]

    substance: Mapped[Substance | None] = relationship(foreign_keys=[substance_id], lazy="raise")
    nearest_substance: Mapped[Substance | None] = relationship(
        foreign_keys=[nearest_substance_id], lazy="raise"
    )
    cluster: Mapped[Cluster | None] = relationship(lazy="raise")


class IdempotencyRecord(Base):
    """The first response to a lab's Idempotency-Key, replayed on retries (kept >= 24 hours)."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("organisation_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    key: Mapped[str] = mapped_column(String(200))
    method_path: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]  # null while the first request is still in flight
    response_body: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)


class StoredAnalysis(Base):
    """The analysis of a submitted structure, kept so that the service's other processes (and
    this one after a restart) need not run RDKit on it again (see app/analysis_store.py).

    `pipeline` names what produced it: the reference library's content and the chemistry
    code. Rows of another pipeline are never read; the purge job drops rows past retention.
    """

    __tablename__ = "stored_analysis"
    __table_args__ = (UniqueConstraint("pipeline", "input_type", "input_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(64))
    input_type: Mapped[str] = mapped_column(String(10))
    input_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the submitted text
    record: Mapped[dict[str, Any]] = mapped_column()  # chemistry.records.to_record
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
