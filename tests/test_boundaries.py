"""The pure packages never import the service shell or its frameworks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"fastapi", "sqlalchemy", "apscheduler", "starlette", "app", "alembic", "uvicorn"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", ["chemistry", "alerts", "reference_standards"])
def test_pure_package_imports_no_service_framework(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package} has no modules"
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN) for path in files
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_boundary_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from sqlalchemy.orm import Session\nimport app.db\n")
    assert imported_roots(module) & FORBIDDEN == {"sqlalchemy", "app"}
