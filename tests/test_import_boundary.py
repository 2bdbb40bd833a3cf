"""The engine stays framework-free: no dagster, sqlalchemy or pipeline imports, statically or at runtime.
And nothing in the project reaches into Dagster's internals (`dagster._...`): they change without notice."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"
FORBIDDEN = ("dagster", "sqlalchemy", "pipeline", "alembic", "psycopg2")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _private_dagster(path: Path) -> list[str]:
    return sorted(m for m in _imported_modules(path) if m.startswith(("dagster._", "dagster_shared")))


def test_nothing_imports_dagster_internals():
    files = [f for d in ("pipeline", "tests", "benchmarks") for f in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 30
    offenders = {str(f.relative_to(ROOT)): _private_dagster(f) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_sources_import_no_framework():
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) > 10
    offenders = {
        str(f.relative_to(ENGINE.parent)): sorted(r for r in _imported_roots(f) if r.startswith(FORBIDDEN))
        for f in files
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}


def test_importing_the_engine_loads_no_framework():
    code = (
        "import sys, engine.backtest, engine.features, engine.strategies, engine.ranking, engine.data;"
        f"bad=[m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ENGINE.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_boundary_check_detects_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom dagster import asset\n")
    assert "dagster" in _imported_roots(bad)
    assert _private_dagster(bad) == []
    bad.write_text("from dagster._core.storage import x\nimport dagster._utils\nfrom dagster import _check\n")
    assert _private_dagster(bad) == ["dagster._check", "dagster._core.storage", "dagster._core.storage.x",
                                     "dagster._utils"]
