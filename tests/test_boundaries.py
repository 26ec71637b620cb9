"""Import boundaries from DESIGN.md: the ML core stays pure; the API never pulls in torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULES = {
    "worker/unlearning": {
        "fastapi",
        "starlette",
        "celery",
        "redis",
        "boto3",
        "botocore",
        "sqlalchemy",
        "app",
        "worker.toy",
    },
    "app": {"torch", "diffusers", "transformers", "peft", "worker"},
}
# The API validates config overrides with the engine's own rules: these two modules are plain Python
# (tests/app/api/test_jobs.py checks that importing the API loads no torch).
ALLOWED = {"app": {"worker.unlearning.config", "worker.unlearning.errors"}}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_does_not_import_across_its_boundary(package):
    folder = ROOT / package
    if not folder.exists():
        pytest.skip(f"{package}/ does not exist yet")
    bad = []
    for path in sorted(folder.rglob("*.py")):
        for name in _imports(path) - ALLOWED.get(package, set()):
            if any(name == banned or name.startswith(banned + ".") for banned in RULES[package]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad
