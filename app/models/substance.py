"""Reference standards (substances) and their searchable names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utc_now
from chemistry.vocabulary import Category, ChemicalGroup, ControlStatus, EffectGroup, PotencyTier


class Substance(Base):
    __tablename__ = "substance"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    synonyms: Mapped[list[Any]] = mapped_column(default=list)
    smiles: Mapped[str] = mapped_column(Text)
    inchi: Mapped[str] = mapped_column(Text)
    inchikey: Mapped[str] = mapped_column(String(27), unique=True)
    formula: Mapped[str] = mapped_column(String(100))
    exact_mass: Mapped[float]
    category: Mapped[Category]
    chemical_group: Mapped[ChemicalGroup]
    effect_group: Mapped[EffectGroup]
    control: Mapped[ControlStatus]
    control_year: Mapped[int | None]
    potency_tier: Mapped[PotencyTier]
    first_reported: Mapped[int | None]
    source: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary)
    fingerprint_spec: Mapped[str | None] = mapped_column(String(100))
    # Max Tanimoto similarity to an extreme/very-high potency reference (1.0 when it is one).
    potent_similarity: Mapped[float] = mapped_column(default=0.0)
    retired_at: Mapped[datetime | None]  # removed from the data files; detections still point here
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    names: Mapped[list[SubstanceName]] = relationship(
        back_populates="substance", lazy="raise", cascade="all, delete-orphan"
    )


class SubstanceName(Base):
    """A name or synonym, normalised (case and punctuation folded) for lookup."""

    __tablename__ = "substance_name"

    id: Mapped[int] = mapped_column(primary_key=True)
    substance_id: Mapped[int] = mapped_column(ForeignKey("substance.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))
    normalised: Mapped[str] = mapped_column(String(300), unique=True)

    substance: Mapped[Substance] = relationship(back_populates="names", lazy="raise")
