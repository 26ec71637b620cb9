"""The toy world's judge for erasure reports and benchmarks: the shipped shape classifier."""

from __future__ import annotations

from pathlib import Path

import torch

from worker.toy import quality
from worker.toy.data import COLORS, SHAPES
from worker.unlearning.report import Probe


class ShapeJudge:
    """Does each image show `subject`? Only shapes can be judged; other subjects give None."""

    def __init__(self, model_dir: Path) -> None:
        self.classifier = quality.load_classifier(model_dir)

    def __call__(self, images: torch.Tensor, subject: str) -> list[bool] | None:
        if subject not in SHAPES:
            return None
        return [label == subject for label in quality.classify(self.classifier, images)]


def is_toy_model(model_dir: Path) -> bool:
    return (model_dir / quality.CLASSIFIER_DIR / "model.safetensors").is_file()


def probes(concept: str) -> list[Probe]:
    """The concept under three templates (the drawing one has a form the eraser never uses) and every other shape."""
    colors = list(COLORS)
    concept_prompts = [
        f"a {colors[0]} {concept}",
        f"a {concept} in {colors[2]}",
        f"a drawing of a {colors[3]} {concept}",
    ]
    out = [Probe(p, concept, True) for p in concept_prompts]
    others = [s for s in SHAPES if s != concept]
    out += [Probe(f"a {list(COLORS)[i]} {s}", s, False) for i, s in enumerate(others)]
    return out
