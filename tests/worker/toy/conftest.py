from __future__ import annotations

from pathlib import Path

import pytest

from worker.toy import quality
from worker.toy.paths import toy_model_dir


@pytest.fixture(scope="session")
def toy_dir() -> Path:
    path = toy_model_dir()
    assert (path / "model_index.json").is_file(), f"the shipped toy model is missing at {path}"
    return path


@pytest.fixture(scope="session")
def toy_pipe(toy_dir: Path):
    return quality.load_pipeline(toy_dir)


@pytest.fixture(scope="session")
def classifier(toy_dir: Path):
    return quality.load_classifier(toy_dir)
