"""Finding and loading base models: the shipped toy model by name, local directories, hub ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from worker.toy.paths import TOY_MODEL_NAME, toy_model_dir
from worker.unlearning.errors import ModelError

SUPPORTED = {"StableDiffusionPipeline", "StableDiffusionXLPipeline"}


def resolve(model: str) -> str:
    """A local directory for `toy-shapes` or a path; anything else is taken as a hub id."""
    if model == TOY_MODEL_NAME:
        return str(toy_model_dir())
    path = Path(model).expanduser()
    if path.exists():
        index = path / "model_index.json"
        if not index.is_file():
            raise ModelError(f"{model}: not a diffusers pipeline directory (no model_index.json)")
        cls = json.loads(index.read_text()).get("_class_name")
        if cls not in SUPPORTED:
            raise ModelError(f"{model}: {cls} is not supported; expected one of {', '.join(sorted(SUPPORTED))}")
        return str(path.resolve())
    if model.count("/") != 1 or model.startswith(("/", ".")):
        raise ModelError(f"{model}: no such directory, and not a hub id of the form owner/name")
    return model


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for, but CUDA is not available")
    return device


def load(model: str, device: str) -> Any:
    """The pipeline on `device`: bf16 weights on CUDA, fp32 on CPU; no safety checker, no progress bar."""
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    source = resolve(model)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    try:
        pipe = DiffusionPipeline.from_pretrained(source, dtype=dtype, safety_checker=None)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{model}: cannot load ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if type(pipe).__name__ not in SUPPORTED:
        raise ModelError(f"{model}: {type(pipe).__name__} is not supported")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
