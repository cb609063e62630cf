"""Bulk import of detections from CSV or JSON Lines, through the API's validation and enrichment.

CSV columns (header names; empty cells are absent values): smiles | inchi | name (exactly one),
detected_on, country, region, sample_type, context, technique, purity_percent, quantity,
quantity_unit, co_detected (names separated by ';'), lab_reference.
JSON Lines: one API body (as for POST /v1/detections) per line.

Re-running an import creates no duplicates: a row with a lab_reference already stored for the
lab is skipped; a row without one is identified by a hash of its content and its occurrence
number among identical rows of the file (so two identical rows stay two detections).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.deps import Principal
from app.detections import service
from app.detections.schemas import DetectionCreate
from app.enrichment import Enricher
from app.errors import ConflictError, FieldError, InvalidFieldsError
from app.models import Detection
from app.problems import validation_errors

CHUNK = 500
_STRUCTURE_COLUMNS = ("smiles", "inchi", "name")
_PLAIN_COLUMNS = (
    "detected_on",
    "country",
    "region",
    "sample_type",
    "context",
    "technique",
    "purity_percent",
    "lab_reference",
)


@dataclass(frozen=True, slots=True)
class Rejection:
    row: int  # line number in the file (CSV: the header is line 1)
    field: str
    reason: str


@dataclass
class ImportResult:
    total: int = 0
    stored: int = 0
    skipped: int = 0  # already imported earlier
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({rejection.row for rejection in self.rejections})


_NUMBER_COLUMNS = ("purity_percent",)


def _number(text: str) -> float | str:
    """A CSV cell as the JSON number the API expects; text that is no number stays text, so
    that validation names the field."""
    try:
        return float(text)
    except ValueError:
        return text


def _csv_body(row: dict[str, str]) -> dict[str, Any]:
    cells = {key.strip(): (value or "").strip() for key, value in row.items() if key}
    body: dict[str, Any] = {}
    structure = {key: cells[key] for key in _STRUCTURE_COLUMNS if cells.get(key)}
    body["substance"] = structure
    for key in _PLAIN_COLUMNS:
        if cells.get(key):
            body[key] = _number(cells[key]) if key in _NUMBER_COLUMNS else cells[key]
    if cells.get("quantity"):
        body["quantity"] = {
            "value": _number(cells["quantity"]),
            "unit": cells.get("quantity_unit", ""),
        }
    if cells.get("co_detected"):
        body["co_detected"] = [
            {"name": name.strip()} for name in cells["co_detected"].split(";") if name.strip()
        ]
    unknown = set(cells) - {
        *_STRUCTURE_COLUMNS,
        *_PLAIN_COLUMNS,
        "quantity",
        "quantity_unit",
        "co_detected",
    }
    for key in unknown:
        if cells[key]:
            body[key] = cells[key]  # rejected by the schema as an unknown field, naming it
    return body


def read_rows(handle: TextIO, fmt: str) -> Iterator[tuple[int, dict[str, Any] | FieldError]]:
    """Yield (line number, API body) or (line number, error) for every data row."""
    if fmt == "csv":
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, _csv_body(row)
        return
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            yield number, FieldError("line", f"not JSON: {error.msg}")
            continue
        if not isinstance(value, dict):
            yield number, FieldError("line", "each line must be a JSON object")
            continue
        yield number, value


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    with path.open(encoding="utf-8") as handle:
        return "jsonl" if handle.read(1) == "{" else "csv"


def _content_hash(body: DetectionCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def count_rows(path: Path, fmt: str) -> int:
    with path.open(encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            return sum(1 for _ in csv.DictReader(handle))
        return sum(1 for line in handle if line.strip())


def import_file(
    sessions: sessionmaker[Session],
    principal: Principal,
    path: Path,
    enricher: Enricher,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import every row; each is stored, skipped as already imported, or rejected with reasons."""
    fmt = detect_format(path)
    total = count_rows(path, fmt)
    organisation_id = principal.organisation_id
    assert organisation_id is not None
    with sessions.begin() as session:
        known_references = set(
            session.scalars(
                select(Detection.lab_reference).where(
                    Detection.organisation_id == organisation_id,
                    Detection.lab_reference.is_not(None),
                )
            )
        )
        known_keys = set(
            session.scalars(
                select(Detection.import_key).where(
                    Detection.organisation_id == organisation_id, Detection.import_key.is_not(None)
                )
            )
        )
    result = ImportResult(total=total)
    occurrences: Counter[str] = Counter()
    pending: list[tuple[int, DetectionCreate, str | None]] = []
    done = 0

    def flush() -> None:
        nonlocal done
        _store_chunk(sessions, principal, pending, enricher, result)
        done += len(pending)
        pending.clear()
        if progress is not None:
            progress(done, total)

    with path.open(encoding="utf-8", newline="") as handle:
        for line, row in read_rows(handle, fmt):
            if isinstance(row, FieldError):
                result.rejections.append(Rejection(line, row.field, row.reason))
                done += 1
                continue
            try:
                body = DetectionCreate.model_validate(row)
            except ValidationError as error:
                result.rejections.extend(
                    Rejection(line, e.field, e.reason) for e in validation_errors(error.errors())
                )
                done += 1
                continue
            import_key: str | None = None
            if body.lab_reference is not None:
                if body.lab_reference in known_references:
                    result.skipped += 1
                    done += 1
                    continue
                known_references.add(body.lab_reference)
            else:
                content = _content_hash(body)
                occurrences[content] += 1
                import_key = hashlib.sha256(
                    f"{content}#{occurrences[content]}".encode()
                ).hexdigest()
                if import_key in known_keys:
                    result.skipped += 1
                    done += 1
                    continue
            pending.append((line, body, import_key))
            if len(pending) >= CHUNK:
                flush()
    if pending or progress is not None:
        flush()
    return result


def _store_chunk(
    sessions: sessionmaker[Session],
    principal: Principal,
    pending: list[tuple[int, DetectionCreate, str | None]],
    enricher: Enricher,
    result: ImportResult,
) -> None:
    """Store a chunk as one multi-row insert; if that fails, row by row so bad rows fail alone.

    Duplicates were filtered before, so the fast path is the rule; the slow path handles rows
    that fail in enrichment or clash with a detection stored concurrently.
    """
    try:
        with sessions.begin() as session:
            enricher.prefetch(session, [body.substance.kind_and_text for _, body, _ in pending])
            rows = [
                service.build(session, principal, body, enricher, import_key=import_key)
                for _line, body, import_key in pending
            ]
            session.add_all(rows)
            session.flush()
        result.stored += len(rows)
        return
    except (InvalidFieldsError, IntegrityError):
        pass  # fall through to the row-by-row path, which reports each failing row
    with sessions.begin() as session:
        for line, body, import_key in pending:
            try:
                with enricher.catalogue.savepoint(session):
                    service.create(session, principal, body, enricher, import_key=import_key)
            except InvalidFieldsError as error:
                result.rejections.extend(Rejection(line, e.field, e.reason) for e in error.errors)
            except ConflictError as error:
                result.rejections.append(Rejection(line, "lab_reference", error.detail))
            except IntegrityError:
                result.rejections.append(Rejection(line, "lab_reference", "already stored"))
            else:
                result.stored += 1


def write_report(path: Path, rejections: list[Rejection]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "field", "reason"])
        for rejection in rejections:
            writer.writerow([rejection.row, rejection.field, rejection.reason])


class ProgressLine:
    """A progress line on a text stream: count, percentage, rate and ETA."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else 0.0
        percent = 100.0 * done / total if total else 100.0
        self.stream.write(
            f"\r{self.label}: {done}/{total} ({percent:5.1f}%) {rate:7.0f} rows/s, ETA {eta:5.0f} s"
        )
        self.stream.flush()
        if done >= total:
            self.stream.write("\n")
