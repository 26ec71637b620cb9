"""The erasure's configuration: one frozen dataclass, validated on construction.

Every field carries its help text; `UnlearnConfig.from_overrides` is what the CLI and the API use,
so a bad value is refused the same way everywhere, before any work starts.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from worker.unlearning.errors import ConfigError


def _f(default: Any, help: str, lo: float | None = None, hi: float | None = None, choices: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "min": lo, "max": hi, "choices": choices})


LAYER_POSITIONS = ("last", "first")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class UnlearnConfig:
    """How a concept is learned and erased. The defaults were chosen by bench/efficacy.py."""

    # Textual inversion
    ti_steps: int = _f(100, "optimiser steps that learn the concept's token from the images", 0, 5000)
    ti_lr: float = _f(5e-3, "learning rate of the token embedding", 1e-6, 1.0)
    ti_batch: int = _f(4, "images (with noise) per textual-inversion step", 1, 64)
    # LoRA on the text encoder(s)
    layers: int = _f(2, "how many transformer layers of each text encoder get a LoRA (which: layer_position)", 1, 48)
    layer_position: str = _f(
        "first",
        "which layers get the LoRA: 'last' = the final ones, 'first' = the earliest (an edit of the word itself)",
        choices=LAYER_POSITIONS,
    )
    rank: int = _f(8, "LoRA rank", 1, 128)
    alpha: int = _f(8, "LoRA alpha (scale = alpha / rank); folded into the exported weights", 1, 1024)
    steps: int = _f(800, "optimiser steps of the erasure", 1, 10000)
    lr: float = _f(1e-2, "learning rate of the LoRA weights", 1e-6, 1.0)
    lr_schedule: str = _f(
        "cosine",
        "how the LoRA's learning rate moves over the steps: 'constant', or 'cosine' (decays to 0)",
        choices=LR_SCHEDULES,
    )
    batch: int = _f(4, "forget prompts (each with a noised image) per erasure step", 1, 64)
    retain_batch: int = _f(8, "unrelated prompts per erasure step (they run through the text encoder only)", 1, 256)
    # Loss weights
    forget_weight: float = _f(1.0, "weight of the UNet-level forget term", 0.0, 1000.0)
    negative_guidance: float = _f(
        1.0, "how far the forget target is pushed from what the concept adds to the unconditional prediction", 0, 10
    )
    anchor_projection: float = _f(
        1.0,
        "share of the concept's direction removed from the anchor's prediction, so an anchor that itself draws the"
        " concept (the model's fallback when a prompt names nothing) is not taken as the target",
        0.0,
        1.0,
    )
    text_forget_weight: float = _f(
        0.0, "weight of mapping the concept prompts' text-encoder outputs onto the anchor's", 0.0, 1000.0
    )
    retain_weight: float = _f(10.0, "weight of keeping unrelated prompts' text-encoder outputs unchanged", 0.0, 1000.0)
    reg_weight: float = _f(1e-4, "weight of the L2 penalty on the LoRA weights", 0.0, 10.0)
    # Prompts
    anchor: str = _f("", "what the concept should become; empty = a neutral prompt (the template without it)")
    context_words: float = _f(
        0.5, "share of forget prompts that get a random vocabulary word as context (generalises the erasure)", 0, 1
    )
    retain_prompts: tuple[str, ...] = _f((), "extra prompts whose outputs must not change")
    bank: int = _f(256, "noised latents whose forget targets are computed once up front", 1, 4096)
    trajectory_share: float = _f(
        0.5, "share of the bank taken from the model's own sampling of the concept (as ESD) instead of the images", 0, 1
    )
    trajectory_steps: int = _f(10, "sampler steps of those trajectories", 2, 100)
    trajectory_guidance: float = _f(5.0, "classifier-free guidance of those trajectories", 1.0, 30.0)
    trajectory_points: int = _f(
        4, "bank points taken from each sampled trajectory (random steps): a bigger bank for the same sampling", 1, 100
    )
    resolution: int = _f(0, "training resolution in pixels; 0 = the model's native size", 0, 2048)
    seed: int = _f(0, "random seed; the same inputs and seed give the same adapter on CPU", 0, 2**31 - 1)
    check_every: int = _f(5, "steps between cancellation checks and progress reports", 1, 1000)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            _check(f.name, value, f.type, f.metadata)
        if self.resolution and self.resolution % 8:
            raise ConfigError(f"resolution must be a multiple of 8, got {self.resolution}")
        if len(self.anchor) > 200:
            raise ConfigError("anchor must be at most 200 characters")

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | str | None) -> UnlearnConfig:
        """Defaults with `overrides` (a dict or a JSON object) applied; unknown keys are refused."""
        if isinstance(overrides, str):
            try:
                overrides = json.loads(overrides)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"config is not valid JSON: {exc.msg} at position {exc.pos}") from None
        overrides = overrides or {}
        if not isinstance(overrides, dict):
            raise ConfigError("config must be a JSON object of field: value")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "retain_prompts" in overrides and isinstance(overrides["retain_prompts"], list):
            overrides = {**overrides, "retain_prompts": tuple(overrides["retain_prompts"])}
        return cls(**overrides)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["retain_prompts"] = list(self.retain_prompts)
        return d

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text with its default and range, for the CLI and the API docs."""
        out = {}
        for f in fields(cls):
            default = f.default if f.default is not MISSING else None
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            rng = f" [{lo}, {hi}]" if lo is not None else ""
            out[f.name] = f"{f.metadata['help']} (default {default!r}){rng}"
        return out


def markdown_table() -> str:
    """The README's configuration table, generated from the class (a test keeps the README in step)."""
    rows = ["| field | meaning (default) [range] |", "| --- | --- |"]
    rows += [f"| `{name}` | {text} |" for name, text in UnlearnConfig.help().items()]
    return "\n".join(rows)


_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str}
_NAMES = {"int": "an integer", "float": "a number", "str": "a string"}


def _check(name: str, value: Any, type_name: Any, meta: Any) -> None:
    if name == "retain_prompts":
        if not isinstance(value, tuple) or not all(isinstance(p, str) and 0 < len(p) <= 300 for p in value):
            raise ConfigError("retain_prompts must be a list of non-empty strings of at most 300 characters")
        if len(value) > 256:
            raise ConfigError("retain_prompts may hold at most 256 prompts")
        return
    expected = _TYPES[str(type_name)]
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{name} must be {_NAMES[str(type_name)]}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and not (lo <= value <= hi):
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value!r}")


if __name__ == "__main__":
    print(markdown_table())
