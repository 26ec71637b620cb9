"""How well a toy-shapes pipeline draws what its prompts name, judged by the shape classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from safetensors.torch import load_file, save_file

from worker.toy.data import COLORS, SHAPE_ONLY_TEMPLATE, SHAPE_TEMPLATES, SHAPES
from worker.toy.model import ShapeClassifier

CLASSIFIER_DIR = "classifier"
EVAL_STEPS = 25
EVAL_GUIDANCE = 4.0


def save_classifier(model: ShapeClassifier, model_dir: Path) -> None:
    out = model_dir / CLASSIFIER_DIR
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "model.safetensors")
    (out / "config.json").write_text(json.dumps({"classes": list(SHAPES), "input": "RGB 32x32 in [-1, 1]"}) + "\n")


def load_classifier(model_dir: Path) -> ShapeClassifier:
    """The shape classifier shipped beside a toy-shapes model, in eval mode."""
    model = ShapeClassifier()
    model.load_state_dict(load_file(model_dir / CLASSIFIER_DIR / "model.safetensors"))
    return model.eval().requires_grad_(False)


def prompts_for(template: str, shape: str, n: int) -> list[str]:
    """`n` prompts for one shape, cycling through the colours when the template names one."""
    colors = list(COLORS)
    return [template.format(shape=shape, color=colors[i % len(colors)]) for i in range(n)]


@torch.no_grad()
def generate(
    pipe: StableDiffusionPipeline,
    prompts: list[str],
    seed: int,
    steps: int = EVAL_STEPS,
    guidance: float = EVAL_GUIDANCE,
    batch: int = 64,
) -> torch.Tensor:
    """Images for `prompts` as NCHW in [0, 1], deterministic for a seed."""
    generator = torch.Generator("cpu").manual_seed(seed)
    out = []
    for i in range(0, len(prompts), batch):
        result = pipe(
            prompts[i : i + batch],
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generator,
            output_type="pt",
        )
        out.append(result.images.float().cpu())
    return torch.cat(out)


@torch.no_grad()
def classify(classifier: ShapeClassifier, images: torch.Tensor) -> list[str]:
    """Shape names for NCHW images in [0, 1]."""
    logits = classifier(images.to(next(classifier.parameters()).device) * 2 - 1)
    return [SHAPES[i] for i in logits.argmax(1).tolist()]


def shape_accuracy(
    pipe: StableDiffusionPipeline,
    classifier: ShapeClassifier,
    n_per_shape: int,
    seed: int = 0,
    steps: int = EVAL_STEPS,
    guidance: float = EVAL_GUIDANCE,
) -> dict[str, dict[str, float]]:
    """For each template and shape: the share of samples the classifier calls that shape."""
    templates = [*SHAPE_TEMPLATES, SHAPE_ONLY_TEMPLATE]
    result: dict[str, dict[str, float]] = {}
    for ti, template in enumerate(templates):
        prompts = [p for shape in SHAPES for p in prompts_for(template, shape, n_per_shape)]
        labels = classify(classifier, generate(pipe, prompts, seed=seed + ti, steps=steps, guidance=guidance))
        result[template] = {
            shape: sum(label == shape for label in labels[k * n_per_shape : (k + 1) * n_per_shape]) / n_per_shape
            for k, shape in enumerate(SHAPES)
        }
    return result


def sample_grid(pipe: StableDiffusionPipeline, seed: int, scale: int = 3) -> Image.Image:
    """Rows = shapes, columns = colours, prompt `a {color} {shape}`, two samples per cell."""
    prompts = [f"a {c} {s}" for s in SHAPES for c in COLORS for _ in range(2)]
    images = generate(pipe, prompts, seed=seed)
    size = images.shape[-1] * scale
    cols = 2 * len(COLORS)
    grid = Image.new("RGB", (cols * size, len(SHAPES) * size), "white")
    for i, img in enumerate(images):
        arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        tile = Image.fromarray(arr).resize((size, size), Image.Resampling.NEAREST)
        grid.paste(tile, ((i % cols) * size, (i // cols) * size))
    return grid


def load_pipeline(model_dir: Path, device: str = "cpu") -> StableDiffusionPipeline:
    """A toy-shapes pipeline from disk, offline, with the progress bars off."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    pipe = StableDiffusionPipeline.from_pretrained(model_dir, local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
