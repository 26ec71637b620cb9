"""The unlearning core: pure ML (torch, diffusers, transformers, peft), no web, queue or storage.

result = unlearn_concept(pipe, "circle", images, UnlearnConfig())
artifacts.write(result, out_dir, ...)

Names load lazily, so `worker.unlearning.config` (pure Python) can be imported by the API to
validate overrides without pulling in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.unlearning.config import UnlearnConfig
    from worker.unlearning.engine import Result, unlearn_concept
    from worker.unlearning.errors import Canceled, ConfigError, InputError, ModelError, UnlearnError

_WHERE = {
    "UnlearnConfig": "config",
    "Result": "engine",
    "unlearn_concept": "engine",
    "Canceled": "errors",
    "ConfigError": "errors",
    "InputError": "errors",
    "ModelError": "errors",
    "UnlearnError": "errors",
}

__all__ = [
    "Canceled",
    "ConfigError",
    "InputError",
    "ModelError",
    "Result",
    "UnlearnConfig",
    "UnlearnError",
    "unlearn_concept",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
