"""Analyses are stored with the first detection carrying them and read back by the service's
other processes (here: another Enricher, with a chemistry that counts its calls), but only by
the same pipeline (reference library and chemistry code)."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app import analysis_store
from app.catalogue import Catalogue
from app.chemistry_pool import InlineChemistry
from app.deps import Principal
from app.detections import service
from app.detections.schemas import DetectionCreate
from app.enrichment import Enricher
from app.models import Organisation, StoredAnalysis, Substance
from app.models.enums import ApiRole, OrganisationKind
from chemistry.analysis import Analyser, Analysis
from reference_standards import Library

NEW_NITAZENE = "CCN(CC)CCn1c(Cc2ccc(OCC3CC3)cc2)nc2cc([N+](=O)[O-])ccc21"
FENTANYL_SALT = "CCC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1.Cl"
INPUTS = [("smiles", NEW_NITAZENE), ("smiles", FENTANYL_SALT)]


class CountingChemistry(InlineChemistry):
    """The real inline chemistry, counting the structures it analyses."""

    def __init__(self) -> None:
        super().__init__()
        self.analysed: list[str] = []

    def analyse(self, analyser: Analyser, text: str, fmt: str) -> Analysis:
        self.analysed.append(text)
        return super().analyse(analyser, text, fmt)


def enricher() -> tuple[Enricher, CountingChemistry]:
    chemistry = CountingChemistry()
    return Enricher(Catalogue(), chemistry=chemistry), chemistry


def lab(sessions: sessionmaker[Session]) -> Principal:
    with sessions.begin() as session:
        organisation = Organisation(name="Store Lab", kind=OrganisationKind.LAB, country="DE")
        session.add(organisation)
        session.flush()
        return Principal(
            actor="test", actor_type="api_key", role=ApiRole.LAB, organisation_id=organisation.id
        )


def post(
    sessions: sessionmaker[Session], principal: Principal, enricher: Enricher, smiles: str
) -> dict[str, object]:
    body = DetectionCreate.model_validate(
        {
            "substance": {"smiles": smiles},
            "detected_on": "2026-04-01",
            "country": "DE",
            "sample_type": "seizure",
        }
    )
    with sessions.begin() as session:
        enricher.prefetch(session, [body.substance.kind_and_text])
        detection = service.create(session, principal, body, enricher)
        return service.view(detection)


def stored_rows(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return session.scalar(select(func.count()).select_from(StoredAnalysis)) or 0


def test_another_process_reuses_a_stored_analysis(
    sessions: sessionmaker[Session], loaded_references: Library
) -> None:
    principal = lab(sessions)
    first, first_chemistry = enricher()
    views = [post(sessions, principal, first, smiles) for _, smiles in INPUTS]
    assert first_chemistry.analysed == [NEW_NITAZENE, FENTANYL_SALT]
    assert stored_rows(sessions) == 2
    post(sessions, principal, first, NEW_NITAZENE)  # cached and stored already: nothing new
    assert stored_rows(sessions) == 2

    second, second_chemistry = enricher()  # another API process, or this one restarted
    again = [post(sessions, principal, second, smiles) for _, smiles in INPUTS]
    assert second_chemistry.analysed == []
    keys = ("smiles", "inchikey", "match", "nearest", "analogue_of", "generic_definitions")
    for before, after in zip(views, again, strict=True):
        assert {k: before[k] for k in keys} == {k: after[k] for k in keys}
    assert again[0]["cluster_id"] == views[0]["cluster_id"] is not None
    assert again[1]["match"] is not None


def test_a_changed_library_does_not_read_analyses_of_the_old_one(
    sessions: sessionmaker[Session], loaded_references: Library
) -> None:
    principal = lab(sessions)
    first, _ = enricher()
    post(sessions, principal, first, NEW_NITAZENE)
    with sessions.begin() as session:  # a curator corrects a reference: a new pipeline
        changed = session.execute(
            update(Substance)
            .where(func.lower(Substance.name) == "fentanyl")
            .values(name="Fentanyl (corrected)", updated_at=func.current_timestamp())
        )
        assert changed.rowcount == 1  # type: ignore[attr-defined]
    second, second_chemistry = enricher()
    post(sessions, principal, second, NEW_NITAZENE)
    assert second_chemistry.analysed == [NEW_NITAZENE]
    with sessions.begin() as session:
        pipelines = set(session.scalars(select(StoredAnalysis.pipeline)))
    assert len(pipelines) == 2


def test_a_row_holding_another_text_is_not_used(
    sessions: sessionmaker[Session], loaded_references: Library
) -> None:
    """Rows are found by the text's hash; a row must also hold the very text to be used."""
    first, _ = enricher()
    with sessions.begin() as session:
        analyser = first.catalogue.analyser(session)
        analysis = analyser.analyse_or_raise(NEW_NITAZENE, "smiles")
        analysis_store.save(session, first.catalogue.pipeline, {("smiles", "CCO"): analysis})
        found = analysis_store.load(
            session, first.catalogue.pipeline, [("smiles", "CCO")], analyser.references
        )
    assert found == {}
