"""`sentinel analyse`: one JSON object per input line with the contract keys, in input order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli

CONTRACT = {
    "input",
    "smiles",
    "inchikey",
    "formula",
    "exact_mass",
    "chemical_group",
    "effect_group",
    "effect_confidence",
    "match",
    "nearest",
    "analogue_of",
    "generic_definitions",
    "error",
}
INPUTS = [
    "CC(N)Cc1ccccc1.Cl",  # amphetamine hydrochloride: matches amfetamine
    "C1CC",  # unclosed ring: an error line, not a crash
    "InChI=1S/C9H13N/c1-8(10)7-9-5-3-2-4-6-9/h2-6,8H,7,10H2,1H3",  # amphetamine as InChI
    "CCN(CC)CCn1c(Cc2ccc(OCC3CC3)cc2)nc2cc([N+](=O)[O-])ccc21",  # a new nitazene analogue
]


def run(arguments: list[str], stdin: str | None = None) -> list[dict[str, object]]:
    result = CliRunner().invoke(cli, ["analyse", *arguments], input=stdin)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_analyse_writes_contract_keys_in_input_order(tmp_path: Path, jobs: str) -> None:
    source = tmp_path / "structures.smi"
    source.write_text("\n".join(INPUTS) + "\n")
    rows = run([str(source), "--jobs", jobs])
    assert [row["input"] for row in rows] == INPUTS
    assert all(set(row) == CONTRACT for row in rows)
    salt, broken, inchi, nitazene = rows
    assert salt["match"] == {"name": "amfetamine", "inchikey": "KWTSXDURSIMDCE-UHFFFAOYSA-N"}
    assert inchi["inchikey"] == salt["inchikey"]
    assert broken["error"] is not None
    assert broken["inchikey"] is None
    assert nitazene["chemical_group"] == "nitazene"
    assert nitazene["analogue_of"]


def test_analyse_reads_a_csv_with_a_smiles_column_from_stdin() -> None:
    rows = run(["-"], stdin="id,smiles\n1,CCO\n2,CC(=O)Nc1ccc(O)cc1\n")
    assert [row["input"] for row in rows] == ["CCO", "CC(=O)Nc1ccc(O)cc1"]
    assert rows[1]["match"]["name"] == "paracetamol"  # type: ignore[index]
    assert rows[1]["analogue_of"] == []  # a cutting agent flags nothing
