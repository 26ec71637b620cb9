"""Shared fixtures. GPU tests skip themselves where CUDA is missing."""

from __future__ import annotations

import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach a model hub
# Workers compile their erasures on a CPU by default; every test process (and the workers the
# tests start) would compile the toy model first. The tests that check compiling ask for it.
os.environ.setdefault("UNLEARN_COMPILE", "off")

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is available on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


pytest_plugins = ["tests.realparts"]
