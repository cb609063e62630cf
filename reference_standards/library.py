"""Read the reference data files into validated records, reporting every problem at once.

File format (one file per chemical group under data/, UTF-8, tab-separated):
- lines starting with '#' are comments; the first other line is the header;
- columns, in any order: see COLUMNS; `synonyms` is a '|'-separated list (may be empty);
- `formula` is written from the literature for the parent (free base or acid), independently of
  the SMILES, and must agree with the formula of the standardised SMILES;
- `control_year` and `first_reported` are years or empty when unknown.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from chemistry.analysis import Reference
from chemistry.errors import InvalidStructureError
from chemistry.structures import Identity, identify_text
from chemistry.vocabulary import (
    Category,
    ChemicalGroup,
    ControlStatus,
    EffectGroup,
    PotencyTier,
)

DATA_DIR = Path(__file__).parent / "data"

COLUMNS = (
    "name",
    "synonyms",
    "smiles",
    "formula",
    "category",
    "chemical_group",
    "effect_group",
    "control",
    "control_year",
    "potency_tier",
    "first_reported",
    "source",
)

_FORMULA = re.compile(r"^(?:[A-Z][a-z]?\d*)+[+-]?\d*$")
_ELEMENT = re.compile(r"([A-Z][a-z]?)(\d*)")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_name(name: str) -> str:
    """Case- and punctuation-insensitive name: "5F-MDMB-PICA" and "5f mdmb pica" are equal."""
    return _NOT_ALNUM.sub("", name.casefold())


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.name}: {self.message}"


@dataclass(frozen=True, slots=True)
class ReferenceRecord:
    name: str
    synonyms: tuple[str, ...]
    smiles_as_written: str
    identity: Identity
    formula_as_written: str
    category: Category
    chemical_group: ChemicalGroup
    effect_group: EffectGroup
    control: ControlStatus
    control_year: int | None
    potency_tier: PotencyTier
    first_reported: int | None
    source: str
    file: str
    line: int

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.synonyms)

    @property
    def reference(self) -> Reference:
        """The record as the chemistry's Analyser takes it."""
        return Reference(
            self.name,
            self.identity.inchikey,
            self.identity.smiles,
            self.chemical_group,
            self.effect_group,
            self.control,
            self.potency_tier,
            self.category,
        )


@dataclass(frozen=True, slots=True)
class Library:
    records: tuple[ReferenceRecord, ...]
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def references(self) -> list[Reference]:
        return [record.reference for record in self.records]

    def counts_by(self, attribute: str) -> dict[str, int]:
        counts = Counter(str(getattr(record, attribute)) for record in self.records)
        return dict(sorted(counts.items()))


def _element_counts(formula: str) -> tuple[Counter[str], str]:
    charge_match = re.search(r"([+-]\d*)$", formula)
    charge = charge_match.group(1) if charge_match else ""
    body = formula[: len(formula) - len(charge)] if charge else formula
    counts: Counter[str] = Counter()
    for element, number in _ELEMENT.findall(body):
        counts[element] += int(number) if number else 1
    return counts, charge


def formulas_agree(written: str, computed: str) -> bool:
    """True when two formulas have the same element counts and charge, in any order."""
    return _element_counts(written) == _element_counts(computed)


def _year(value: str, column: str, problems: list[str]) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 1800 <= int(value) <= 2100:
        problems.append(f"{column} must be a year, not {value!r}")
        return None
    return int(value)


E = TypeVar("E", Category, ChemicalGroup, EffectGroup, ControlStatus, PotencyTier)


def _vocabulary(enum: type[E], value: str, column: str, problems: list[str]) -> E | None:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        problems.append(f"{column} {value!r} is not one of: {allowed}")
        return None


def _read_row(
    row: dict[str, str], file: str, line: int
) -> tuple[ReferenceRecord | None, list[str]]:
    problems: list[str] = []
    name = row.get("name", "").strip()
    if not name:
        problems.append("name is empty")
    synonyms = tuple(s.strip() for s in row.get("synonyms", "").split("|") if s.strip())
    smiles = row.get("smiles", "").strip()
    formula = row.get("formula", "").strip()
    if not _FORMULA.match(formula):
        problems.append(f"formula {formula!r} is not a molecular formula")
    identity: Identity | None = None
    try:
        identity = identify_text(smiles)
    except InvalidStructureError as error:
        problems.append(f"SMILES does not parse: {error.reason}")
    if (
        identity is not None
        and _FORMULA.match(formula)
        and not formulas_agree(formula, identity.formula)
    ):
        problems.append(
            f"formula {formula} disagrees with the SMILES, whose parent is {identity.formula}"
        )
    category = _vocabulary(Category, row.get("category", "").strip(), "category", problems)
    group = _vocabulary(
        ChemicalGroup, row.get("chemical_group", "").strip(), "chemical_group", problems
    )
    effect = _vocabulary(EffectGroup, row.get("effect_group", "").strip(), "effect_group", problems)
    control = _vocabulary(ControlStatus, row.get("control", "").strip(), "control", problems)
    potency = _vocabulary(
        PotencyTier, row.get("potency_tier", "").strip(), "potency_tier", problems
    )
    control_year = _year(row.get("control_year", "").strip(), "control_year", problems)
    first_reported = _year(row.get("first_reported", "").strip(), "first_reported", problems)
    if control is ControlStatus.NONE and control_year is not None:
        problems.append("control_year is given but control is 'none'")
    source = row.get("source", "").strip()
    if not source:
        problems.append("source is empty: name the kind of source")
    if problems or identity is None:
        return None, problems
    # every vocabulary value parsed, or a problem would have been recorded above
    assert category is not None
    assert group is not None
    assert effect is not None
    assert control is not None
    assert potency is not None
    return (
        ReferenceRecord(
            name=name,
            synonyms=synonyms,
            smiles_as_written=smiles,
            identity=identity,
            formula_as_written=formula,
            category=category,
            chemical_group=group,
            effect_group=effect,
            control=control,
            control_year=control_year,
            potency_tier=potency,
            first_reported=first_reported,
            source=source,
            file=file,
            line=line,
        ),
        [],
    )


def _rows(path: Path) -> Iterable[tuple[int, dict[str, str]] | tuple[int, str]]:
    """Yield (line number, row) for data lines, or (line number, message) for malformed ones."""
    header: list[str] | None = None
    with path.open(encoding="utf-8", newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.rstrip("\n").rstrip("\r")
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            cells = next(csv.reader([text], delimiter="\t", quoting=csv.QUOTE_NONE))
            if header is None:
                header = [cell.strip() for cell in cells]
                missing = [column for column in COLUMNS if column not in header]
                if missing:
                    yield number, f"header lacks columns: {', '.join(missing)}"
                    return
                continue
            if len(cells) != len(header):
                yield number, f"expected {len(header)} tab-separated cells, found {len(cells)}"
                continue
            yield number, dict(zip(header, cells, strict=True))


def load_library(directory: Path = DATA_DIR) -> Library:
    """Read every *.tsv under directory; report every problem, keep every valid record."""
    records: list[ReferenceRecord] = []
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.tsv")):
        for number, row in _rows(path):
            if isinstance(row, str):
                problems.append(Problem(path.name, number, "-", row))
                continue
            record, row_problems = _read_row(row, path.name, number)
            label = row.get("name", "").strip() or "-"
            problems.extend(Problem(path.name, number, label, message) for message in row_problems)
            if record is not None:
                records.append(record)
    problems.extend(_duplicates(records))
    return Library(records=tuple(records), problems=tuple(problems))


def _duplicates(records: list[ReferenceRecord]) -> list[Problem]:
    problems: list[Problem] = []
    by_key: dict[str, list[ReferenceRecord]] = defaultdict(list)
    by_name: dict[str, list[tuple[ReferenceRecord, str]]] = defaultdict(list)
    for record in records:
        by_key[record.identity.inchikey].append(record)
        seen_in_record: set[str] = set()
        for name in record.names:
            key = normalise_name(name)
            if key in seen_in_record:
                continue
            seen_in_record.add(key)
            by_name[key].append((record, name))
    for inchikey, same in by_key.items():
        for record in same[1:]:
            first = same[0]
            problems.append(
                Problem(
                    record.file,
                    record.line,
                    record.name,
                    f"same structure ({inchikey}) as {first.name} at {first.file}:{first.line}",
                )
            )
    for holders in by_name.values():
        for record, name in holders[1:]:
            first, first_name = holders[0]
            problems.append(
                Problem(
                    record.file,
                    record.line,
                    record.name,
                    f"name {name!r} is also used for {first.name} ({first_name!r}) "
                    f"at {first.file}:{first.line}",
                )
            )
    return problems
