"""The load benchmark at its small size: it runs end to end on SQLite and nothing fails.

Not a speed test: the figures depend on the machine, so they are printed by bench/load.py
(run it by hand at full size) and only errors and the shape of the report are checked here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def test_small_load_run_prints_its_table_with_no_errors() -> None:
    finished = subprocess.run(
        [sys.executable, str(BENCH), "--small", "--backend", "sqlite"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = finished.stdout + finished.stderr

    assert finished.returncode == 0, report
    lines = finished.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("backend   server"))
    assert "requests/s" in lines[header]
    assert "p99 ms" in lines[header]
    row = lines[header + 2].split()
    assert row[0] == "sqlite", report
    assert int(row[-1]) == 0, report  # the errors column
    assert int(row[-6]) > 0, report  # some requests were measured
    assert "machine: " in finished.stdout
    assert "errors during the warm-up" not in finished.stdout
