"""The unlearning core: pure ML (torch, diffusers, transformers, peft), no web, queue or storage.

result = unlearn_concept(pipe, "circle", images, UnlearnConfig())
artifacts.write(result, out_dir, ...)
"""

from worker.unlearning.config import UnlearnConfig
from worker.unlearning.engine import Result, unlearn_concept
from worker.unlearning.errors import Canceled, ConfigError, InputError, ModelError, UnlearnError

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
