"""Before/after samples of an erasure, with scores where a judge is available.

A judge tells whether each image shows a subject (the toy world's shape classifier; on real
models a CLIP-based judge where one is installed). Without one the report holds the samples only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from worker.unlearning.engine import Result

# (NCHW images in [0, 1], subject) -> does each show it? None where the judge cannot tell.
Judge = Callable[[torch.Tensor, str], list[bool] | None]
ADAPTER = "unlearn-report"


@dataclass(frozen=True)
class Probe:
    prompt: str
    subject: str  # what a faithful model draws for the prompt
    is_concept: bool


@contextmanager
def erased(pipe: Any, result: Result) -> Iterator[Any]:
    """The pipeline with the erasure's LoRA loaded through diffusers' own loader, removed afterwards."""
    pipe.load_lora_weights(result.diffusers_lora(), adapter_name=ADAPTER)
    try:
        yield pipe
    finally:
        pipe.unload_lora_weights()


@torch.no_grad()
def _sample(pipe: Any, prompts: list[str], seed: int, steps: int, guidance: float) -> torch.Tensor:
    generator = torch.Generator("cpu").manual_seed(seed)
    out = pipe(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=generator, output_type="pt")
    return out.images.float().cpu()


def _rate(judge: Judge | None, images: torch.Tensor, subject: str) -> float | None:
    if judge is None:
        return None
    hits = judge(images, subject)
    return None if hits is None else sum(hits) / len(hits)


def make_report(
    pipe: Any,
    result: Result,
    probes: list[Probe],
    judge: Judge | None,
    *,
    samples: int = 4,
    steps: int = 25,
    guidance: float = 4.0,
    seed: int = 0,
) -> tuple[dict[str, Any], Image.Image]:
    """Sample every probe before and after the erasure with the same seeds; score with `judge`."""
    prompts = [p.prompt for p in probes for _ in range(samples)]
    before = _sample(pipe, prompts, seed, steps, guidance)
    with erased(pipe, result):
        after = _sample(pipe, prompts, seed, steps, guidance)
    rows = []
    for i, probe in enumerate(probes):
        sl = slice(i * samples, (i + 1) * samples)
        b, a = _rate(judge, before[sl], probe.subject), _rate(judge, after[sl], probe.subject)
        rows.append(
            {"prompt": probe.prompt, "subject": probe.subject, "concept": probe.is_concept, "before": b, "after": a}
        )
    report = {"samples_per_prompt": samples, "steps": steps, "guidance": guidance, "seed": seed, "prompts": rows}
    report.update(_summary(rows))
    return report, _picture(probes, before, after, samples)


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Erase rate (concept prompts no longer showing it) and preservation (others, after / before)."""
    concept = [r for r in rows if r["concept"] and r["after"] is not None]
    other = [r for r in rows if not r["concept"] and r["after"] is not None]
    out: dict[str, Any] = {"erase_rate": None, "erase_rate_before": None, "preservation": None}
    if concept:
        out["erase_rate"] = 1 - float(np.mean([r["after"] for r in concept]))
        out["erase_rate_before"] = 1 - float(np.mean([r["before"] for r in concept]))
    if other:
        before = float(np.mean([r["before"] for r in other]))
        out["preservation"] = float(np.mean([r["after"] for r in other])) / before if before else None
    return out


def _picture(probes: list[Probe], before: torch.Tensor, after: torch.Tensor, samples: int) -> Image.Image:
    """One row per prompt: its samples before | after, the prompt written on the left."""
    tile = max(64, before.shape[-1])
    label_w, gap, head = 220, 12, 18
    width = label_w + 2 * samples * tile + gap
    canvas = Image.new("RGB", (width, head + len(probes) * tile), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((label_w, 2), "before", fill="black")
    draw.text((label_w + samples * tile + gap, 2), "after", fill="black")
    for row, probe in enumerate(probes):
        y = head + row * tile
        draw.text((4, y + tile // 2 - 6), probe.prompt[:34], fill="red" if probe.is_concept else "black")
        for k in range(samples):
            for half, images in enumerate((before, after)):
                arr = (images[row * samples + k].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                img = Image.fromarray(arr).resize((tile, tile), Image.Resampling.NEAREST)
                canvas.paste(img, (label_w + half * (samples * tile + gap) + k * tile, y))
    return canvas


def default_probes(concept: str) -> list[Probe]:
    """For models without a domain judge: the concept in three templates and three unrelated prompts."""
    concept_prompts = [f"a photo of a {concept}", f"a painting of {concept}", concept]
    unrelated = ["a photo of a dog", "a landscape painting with mountains", "a bowl of fruit on a table"]
    return [Probe(p, concept, True) for p in concept_prompts] + [Probe(p, p, False) for p in unrelated]
