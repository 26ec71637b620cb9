"""How often the toy-shapes model draws the shape its prompt names, per template (prints JSON).

    python bench/toy_quality.py [--model DIR] [--per-shape 64] [--steps 25] [--guidance 4.0]

For every template and shape: the share of samples (colours cycled) that the shipped
classifier labels as the prompted shape. The quality bar is >= 0.90 everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch

from worker.toy import quality
from worker.toy.paths import toy_model_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=toy_model_dir())
    p.add_argument("--per-shape", type=int, default=64)
    p.add_argument("--steps", type=int, default=quality.EVAL_STEPS)
    p.add_argument("--guidance", type=float, default=quality.EVAL_GUIDANCE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    start = time.monotonic()
    pipe = quality.load_pipeline(args.model, args.device)
    clf = quality.load_classifier(args.model).to(args.device)
    acc = quality.shape_accuracy(pipe, clf, args.per_shape, seed=args.seed, steps=args.steps, guidance=args.guidance)
    worst = min(v for per_shape in acc.values() for v in per_shape.values())
    print(
        json.dumps(
            {
                "model": str(args.model),
                "per_shape": args.per_shape,
                "steps": args.steps,
                "guidance": args.guidance,
                "seed": args.seed,
                "shape_accuracy": acc,
                "worst": worst,
                "meets_bar_0.90": worst >= 0.90,
                "seconds": round(time.monotonic() - start, 1),
                "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {args.device}, torch {torch.__version__}",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
