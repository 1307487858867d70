"""The packages keep the import direction of docs/architecture.md: app, cli, tasks → registrations →
connectors → config; sandbox stands alone; benchmarks never import the web app."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"app", "cli", "tasks", "registrations", "connectors", "config", "sandbox", "benchmarks"}
FORBIDDEN = {
    "config": OURS - {"config"},
    "connectors": {"app", "cli", "tasks", "registrations", "sandbox", "benchmarks", "sqlalchemy", "celery"},
    "registrations": {"app", "cli", "tasks", "sandbox", "benchmarks", "celery", "kombu", "flask"},
    "tasks": {"app", "cli", "benchmarks", "flask"},
    "app": {"cli", "benchmarks"},
    "sandbox": OURS - {"sandbox"},
    "benchmarks": {"app"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.partition(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downwards(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {name: found for name, found in wrong.items() if found} == {}


# A document named in code: a path or file name ending in .md.
DOCUMENT = re.compile(r"[\w./-]*\w\.md\b")


def test_every_document_a_comment_cites_is_in_the_repository() -> None:
    """The project documents itself (README, docs/, benchmarks/): a cited file must be one of ours."""
    ours = {path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*.md") if ".venv" not in path.parts}
    names = {Path(path).name for path in ours}
    cited_elsewhere = {}
    for package in sorted(OURS):
        for path in (ROOT / package).rglob("*.py"):
            for cited in DOCUMENT.findall(path.read_text()):
                inside = cited.lstrip("./") in ours or (("/" not in cited) and cited in names)
                if not inside or cited.startswith(("..", "/")):
                    cited_elsewhere.setdefault(str(path.relative_to(ROOT)), []).append(cited)
    assert cited_elsewhere == {}
