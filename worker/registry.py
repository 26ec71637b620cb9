"""Base pipelines, loaded once per worker process and reused by every job that names them.

The engine leaves a pipeline as it found it (LoRA detached, tokenizers copied); `check_clean`
makes sure before the next job, so one job's erasure never leaks into another's.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("unlearn.worker")


class Pipelines:
    def __init__(self, registry: dict[str, str], device: str = "auto") -> None:
        self.registry = dict(registry)
        self.device = device
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def source(self, name: str) -> str:
        if name not in self.registry:
            from worker.unlearning import ModelError

            raise ModelError(f"base model {name!r} is not in this worker's registry ({', '.join(self.registry)})")
        return self.registry[name]

    def get(self, name: str) -> Any:
        # Imported here: a Celery parent process never loads torch or touches CUDA; its children do.
        from worker import models

        with self._lock:
            if name not in self._loaded:
                log.info("loading base model %s (%s)", name, self.source(name))
                self._loaded[name] = models.load(self.source(name), models.pick_device(self.device))
            pipe = self._loaded[name]
        check_clean(pipe)
        return pipe


def check_clean(pipe: Any) -> None:
    """Remove any adapter a previous job left on the text encoders (there should be none)."""
    leftovers = [
        te
        for te in (getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None))
        if te is not None and getattr(te, "peft_config", None)
    ]
    if leftovers:
        log.warning("a previous job left a LoRA adapter on the text encoder; removing it")
        pipe.unload_lora_weights()
        for te in leftovers:
            if getattr(te, "peft_config", None):
                te.delete_adapter(list(te.peft_config))
