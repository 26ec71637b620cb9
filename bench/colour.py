"""What an erased prompt draws instead, on toy-shapes: the shapes and whether the named colour survives (JSON).

    python bench/colour.py [--shapes circle,star] [--samples 64] [--seed 0]

For each target, one erasure at the default config (5 rendered images), then `n` samples of
`a {color} {target}` before and after, and 16 samples of each other shape's prompt after. A
sample's colour is the nearest of the four toy colours to the mean of its non-white pixels;
`colour_right` is the share whose colour is the one the prompt names. The erase rate cannot see
this: a sample that is no longer the target counts as erased whatever it became.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from efficacy import concept_images, cpu_model, usable_cores

from worker.toy import data, quality
from worker.toy.paths import toy_model_dir
from worker.unlearning import UnlearnConfig, unlearn_concept
from worker.unlearning.report import erased

_PALETTE = torch.tensor(list(data.COLORS.values()), dtype=torch.float32) / 255
_NAMES = list(data.COLORS)


def colour_right(images: torch.Tensor, prompts: list[str]) -> float:
    """Share of `images` (NCHW in [0, 1]) whose ink is nearest the colour their prompt names."""
    right = 0
    for image, prompt in zip(images, prompts, strict=True):
        ink = image.min(0).values < 0.8  # not near white
        if ink.any():
            mean = image[:, ink].mean(1)
            right += _NAMES[int(((_PALETTE - mean) ** 2).sum(1).argmin())] in prompt.split()
    return round(right / len(prompts), 4)


def probe(pipe, clf, target: str, n: int, cfg: UnlearnConfig) -> dict:
    prompts = quality.prompts_for("a {color} {shape}", target, n)
    before = quality.generate(pipe, prompts, seed=100)
    others = [p for s in data.SHAPES if s != target for p in quality.prompts_for("a {color} {shape}", s, 16)]
    with erased(pipe, unlearn_concept(pipe, target, concept_images(target), cfg)):
        after = quality.generate(pipe, prompts, seed=100)
        others_after = quality.generate(pipe, others, seed=200)
    return {
        "colour_right_before": colour_right(before, prompts),
        "colour_right_after": colour_right(after, prompts),
        "drawn_after": dict(collections.Counter(quality.classify(clf, after))),
        "other_shapes_colour_right_after": colour_right(others_after, others),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default=",".join(data.SHAPES))
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(usable_cores())
    pipe, clf = quality.load_pipeline(toy_model_dir()), quality.load_classifier(toy_model_dir())
    cfg = UnlearnConfig(seed=args.seed)
    out = {
        "config": cfg.to_dict(),
        "samples": args.samples,
        "per_shape": {t: probe(pipe, clf, t, args.samples, cfg) for t in args.shapes.split(",")},
        "machine": f"{platform.machine()} ({cpu_model()}), {usable_cores()} cpus, torch {torch.__version__}",
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
