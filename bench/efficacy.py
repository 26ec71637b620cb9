"""Efficacy of the eraser on toy-shapes: erase rate per template, preservation, seconds (prints JSON).

    python bench/efficacy.py [--shapes circle,star] [--per-template 64] [--seeds 0,1,2] [--config JSON]
                             [--sweep '{"steps": [100, 200]}'] [--picture bench/results/efficacy.png]
                             [--compile]
    python bench/efficacy.py --merge a.json b.json   # one result from runs split by --shapes

For each shape as the target, 5 rendered images of it (colours cycled) and the config:
- erase rate: share of samples for the target's prompts NOT classified as the target, for every
  caption template of the toy world, before and after (`a drawing of a {color} {shape}` has a form
  the eraser's own prompts never take; the README says which forms they share);
- preservation: classifier accuracy on the other shapes' `a {color} {shape}` prompts, after / before;
- seconds per concept by stage.
With --seeds, every target is erased once per seed and the scores averaged (the spread between
seeds is large, see the README). With --sweep, every combination of the listed values is run and
summarised (how defaults were chosen). With --compile, the erasures run compiled, as a CPU worker
runs them by default.
Targets: erase rate >= 0.95 on every template and preservation >= 0.95 for every shape.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import numpy as np
import torch
from PIL import Image

from worker.toy import data, quality
from worker.toy.paths import toy_model_dir
from worker.unlearning import UnlearnConfig, unlearn_concept
from worker.unlearning.report import erased

TEMPLATES = [*data.SHAPE_TEMPLATES, data.SHAPE_ONLY_TEMPLATE]


def usable_cores() -> int:
    """The cores this process may use (taskset); sched_getaffinity is Linux-only."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model() -> str:
    """The processor's name where Linux tells it: CPU seconds differ several-fold between hosts."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


def concept_images(shape: str, n: int = 5, seed: int = 1234) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    colors = list(data.COLORS)
    return [data.render(shape, colors[i % len(colors)], rng) for i in range(n)]


def shape_rates(pipe, clf, shape: str, template: str, n: int, seed: int) -> float:
    """Share of `n` samples of `template` for `shape` that the classifier calls `shape`."""
    labels = quality.classify(clf, quality.generate(pipe, quality.prompts_for(template, shape, n), seed=seed))
    return sum(label == shape for label in labels) / n


def measure(pipe, clf, shapes: list[str], n: int, seed: int) -> dict[str, dict[str, float]]:
    """{shape: {template: share drawn as that shape}} for the pipeline as it is now."""
    return {s: {t: shape_rates(pipe, clf, s, t, n, seed + i) for i, t in enumerate(TEMPLATES)} for s in shapes}


def preservation_rates(pipe, clf, target: str, n: int, seed: int) -> dict[str, float]:
    return {s: shape_rates(pipe, clf, s, TEMPLATES[0], n, seed) for s in data.SHAPES if s != target}


def erase_once(pipe, clf, cfg: UnlearnConfig, target: str, n: int, before: dict, compile: bool = False) -> dict:
    """One erasure of `target` (with cfg.seed) and its scores."""
    result = unlearn_concept(pipe, target, concept_images(target), cfg, compile=compile)
    with erased(pipe, result):
        after = measure(pipe, clf, [target], n, seed=100)[target]
        kept = preservation_rates(pipe, clf, target, n, seed=200)
    kept_before = np.mean([before[s][TEMPLATES[0]] for s in kept])
    return {
        "erase_rate": {t: 1 - after[t] for t in TEMPLATES},
        "preservation": float(np.mean(list(kept.values())) / kept_before),
        "other_shapes_after": kept,
        "seconds": result.timings,
    }


def evaluate(
    pipe, clf, cfg: UnlearnConfig, shapes: list[str], n: int, before: dict, seeds: list[int], compile: bool = False
) -> dict:
    """Scores per target, averaged over `seeds` (one erasure each); the spread is reported too."""
    per_shape = {}
    for target in shapes:
        runs = [erase_once(pipe, clf, replace(cfg, seed=seed), target, n, before, compile) for seed in seeds]
        per_shape[target] = {
            "erase_rate": {t: round(float(np.mean([r["erase_rate"][t] for r in runs])), 4) for t in TEMPLATES},
            "erase_rate_by_seed": {t: [round(r["erase_rate"][t], 4) for r in runs] for t in TEMPLATES},
            "erase_rate_before": {t: round(1 - before[target][t], 4) for t in TEMPLATES},
            "preservation": round(float(np.mean([r["preservation"] for r in runs])), 4),
            "preservation_by_seed": [round(r["preservation"], 4) for r in runs],
            "other_shapes_after": [r["other_shapes_after"] for r in runs],
            "seconds": runs[-1]["seconds"],
        }
    return {**summarise(cfg.to_dict(), seeds, per_shape), "compiled": compile}


def summarise(config: dict, seeds: list[int], per_shape: dict) -> dict:
    worst_erase = min(min(v["erase_rate"].values()) for v in per_shape.values())
    worst_keep = min(v["preservation"] for v in per_shape.values())
    return {
        "config": config,
        "seeds": seeds,
        "per_shape": per_shape,
        "worst_erase_rate": worst_erase,
        "worst_preservation": worst_keep,
        "mean_seconds": round(float(np.mean([v["seconds"]["total_s"] for v in per_shape.values()])), 2),
        "meets_targets": worst_erase >= 0.95 and worst_keep >= 0.95,
    }


def picture(pipe, cfg: UnlearnConfig, shapes: list[str], path: Path, compile: bool = False) -> None:
    """Rows: targets. Columns: 4 samples of `a {color} {target}` before, after, then the other shapes after."""
    rows = []
    for target in shapes:
        prompts = quality.prompts_for(TEMPLATES[0], target, 4)
        others = [f"a {c} {s}" for c, s in zip(data.COLORS, [s for s in data.SHAPES if s != target], strict=False)]
        before = quality.generate(pipe, prompts, seed=7)
        with erased(pipe, unlearn_concept(pipe, target, concept_images(target), cfg, compile=compile)):
            after = quality.generate(pipe, prompts + others, seed=7)
        rows.append(torch.cat([before, after]))
    grid = torch.stack(rows)  # R x C x 3 x H x W
    r, c, _, h, w = grid.shape
    canvas = grid.permute(0, 3, 1, 4, 2).reshape(r * h, c * w, 3).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((canvas * 255).round().astype(np.uint8)).resize((c * w * 3, r * h * 3), Image.NEAREST).save(path)


def merge(paths: list[Path]) -> dict:
    """One result from runs of the same config split by --shapes (e.g. one process per core)."""
    parts = [json.loads(p.read_text()) for p in paths]
    if any("runs" in part for part in parts):
        raise SystemExit("cannot merge --sweep outputs: merge single-config runs")
    first = parts[0]
    for part in parts[1:]:
        for key in ("config", "seeds", "per_template", "compiled"):
            if part.get(key, False) != first.get(key, False):  # files from before --compile: False
                raise SystemExit(f"cannot merge: {key} differs between {paths[0]} and the others")
    shapes = [shape for part in parts for shape in part["per_shape"]]
    if len(shapes) != len(set(shapes)):
        raise SystemExit(f"cannot merge: a shape appears in more than one file ({', '.join(shapes)})")
    per_shape = {shape: v for part in parts for shape, v in part["per_shape"].items()}
    out = summarise(first["config"], first["seeds"], per_shape)
    out.update(
        {
            "compiled": first.get("compiled", False),
            "per_template": first["per_template"],
            "bench_seconds": [part["bench_seconds"] for part in parts],
            "machine": [part["machine"] for part in parts],
        }
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=toy_model_dir())
    p.add_argument("--shapes", default=",".join(data.SHAPES))
    p.add_argument("--per-template", type=int, default=64)
    p.add_argument("--seeds", default="0", help="comma-separated seeds; scores are averaged over them")
    p.add_argument("--config", default=None, help="JSON object of config overrides")
    p.add_argument("--sweep", default=None, help="JSON object of field: [values] to try in every combination")
    p.add_argument("--picture", type=Path, default=None, help="write a before/after picture here")
    p.add_argument("--merge", type=Path, nargs="+", help="print one result from these outputs of split --shapes runs")
    p.add_argument("--compile", action="store_true", help="erase compiled (torch.compile), as CPU workers do")
    args = p.parse_args()
    if args.merge:
        print(json.dumps(merge(args.merge), indent=2))
        return
    cores = usable_cores()
    torch.set_num_threads(cores)
    pipe, clf = quality.load_pipeline(args.model), quality.load_classifier(args.model)
    shapes = args.shapes.split(",")
    base = UnlearnConfig.from_overrides(args.config)
    sweep = json.loads(args.sweep) if args.sweep else {}
    start = time.monotonic()
    before = measure(pipe, clf, list(data.SHAPES), args.per_template, seed=100)
    runs = []
    for values in itertools.product(*sweep.values()):
        cfg = replace(base, **dict(zip(sweep, values, strict=True)))
        seeds = [int(x) for x in args.seeds.split(",")]
        run = evaluate(pipe, clf, cfg, shapes, args.per_template, before, seeds, args.compile)
        run["overrides"] = dict(zip(sweep, values, strict=True))
        runs.append(run)
        print(
            json.dumps({k: run[k] for k in ("overrides", "worst_erase_rate", "worst_preservation", "mean_seconds")}),
            file=sys.stderr,
            flush=True,
        )
    if args.picture:
        picture(pipe, base, shapes, args.picture, args.compile)
    out = runs[0] if len(runs) == 1 else {"runs": runs}
    machine = f"{platform.machine()} ({cpu_model()}), {cores} of {os.cpu_count()} cpus, torch {torch.__version__}"
    out.update(
        {
            "per_template": args.per_template,
            "bench_seconds": round(time.monotonic() - start, 1),
            "machine": machine,
        }
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
