"""Seconds per concept by stage and peak memory, at the default config (prints JSON).

    python bench/speed.py [--targets toy,sd15,sd21,sdxl] [--config JSON] [--repeat 2] [--compile auto|on|off]

toy = the shipped toy-shapes model (CPU or CUDA). sd15 / sd21 / sdxl = the real architectures
with random weights (bench/architectures.py), run only where CUDA is present: on a CPU one
erasure of them takes hours. Targets: toy <= 45 s on 2 CPU cores; sd21 <= 10 s on one H200.
--compile as the worker's UNLEARN_COMPILE (auto: on a CPU with g++ at the default shapes, off on
CUDA). `seconds` is the last of --repeat erasures in one process, as a worker that has erased before
runs them; `first_run_seconds` includes compiling, from an empty or a filled Inductor cache
(`compile_cache` says which).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from efficacy import cpu_model
from PIL import Image

from worker.erasure import compiling
from worker.toy import quality
from worker.toy.paths import toy_model_dir
from worker.unlearning import UnlearnConfig, unlearn_concept


def _images(size: int, n: int = 5) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)) for _ in range(n)]


def pipeline(target: str, device: str):
    """The pipeline `target` names, on `device`, and its native resolution in pixels."""
    if target == "toy":
        return quality.load_pipeline(toy_model_dir(), device), 32
    import architectures

    pipe = architectures.build(target, torch.bfloat16, device)
    return pipe, pipe.unet.config.sample_size * pipe.vae_scale_factor


def measure(target: str, device: str, cfg: UnlearnConfig, repeat: int, compile: bool) -> dict:
    pipe, size = pipeline(target, device)
    images = _images(size)
    runs = []
    for _ in range(repeat):  # the first run includes one-off warm-up (kernels, allocator)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        result = unlearn_concept(pipe, "concept", images, cfg, compile=compile)
        if device == "cuda":
            torch.cuda.synchronize()
        runs.append(result.timings)
    peak = (
        torch.cuda.max_memory_allocated() / 2**30
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    del pipe
    return {
        "seconds": runs[-1],
        "first_run_seconds": runs[0],
        "peak_memory_gib": round(peak, 2),
        "memory_kind": "CUDA allocated" if device == "cuda" else "process max RSS",
        "resolution": size,
        "compiled": compile,
    }


def main() -> None:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="toy,sd15,sd21,sdxl" if cuda else "toy")
    p.add_argument("--config", default=None)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    args = p.parse_args()
    cfg = UnlearnConfig.from_overrides(args.config)
    compile = compiling(args.compile, args.device, cfg)
    out: dict = {"config": cfg.to_dict(), "device": args.device, "results": {}}
    if compile:
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        cache = Path(cache_dir())
        out["compile_cache"] = "filled" if cache.is_dir() and any(cache.iterdir()) else "empty"
    for target in args.targets.split(","):
        if target != "toy" and args.device != "cuda":
            out["results"][target] = {"skipped": "needs a CUDA GPU"}
            continue
        out["results"][target] = measure(target, args.device, cfg, args.repeat, compile)
        print(json.dumps({target: out["results"][target]}), file=sys.stderr, flush=True)
    gpu = torch.cuda.get_device_name(0) if cuda else None
    cpus = f"{os.cpu_count()} cpus ({cpu_model()})"
    out["machine"] = f"{platform.machine()}, {cpus}, {gpu or 'no GPU'}, torch {torch.__version__}"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
