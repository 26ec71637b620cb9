"""One erasure end to end on local files: load, learn and erase, write artifacts with a report.

The CLI (`unlearn run`) and the Celery task both call `run_erasure`; it knows nothing of queues,
databases or object stores.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker import models
from worker.toy import judge as toy_judge
from worker.unlearning import UnlearnConfig, artifacts, unlearn_concept
from worker.unlearning.engine import Progress, Result, check_concept, default_shapes
from worker.unlearning.images import load_images
from worker.unlearning.report import default_probes, make_report

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
log = logging.getLogger("unlearn.worker")


def collect_images(sources: list[Path]) -> list[Path]:
    """Files as given; directories contribute their image files (by suffix), sorted by name."""
    out: list[Path] = []
    for src in sources:
        if src.is_dir():
            out += sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(src)
    return out


def cxx_found() -> bool:
    """Whether the C++ compiler torch.compile's Inductor builds its CPU code with is on PATH."""
    return shutil.which(os.environ.get("CXX") or "g++") is not None


def require_compiler() -> None:
    """Refuse compile=on where torch.compile could not build its kernels."""
    if not cxx_found():
        raise ValueError("compile=on needs a C++ compiler for torch.compile (g++, or the one $CXX names)")


def compiling(mode: str, device_type: str, config: UnlearnConfig | None = None) -> bool:
    """Whether an erasure runs compiled: `mode` "on", "off", or "auto": on a CPU that has a C++
    compiler, for a config with the default shapes (`default_shapes`; any other would compile graphs
    of its own inside its job); off on CUDA, where compiling has not been measured yet."""
    if mode == "on":
        require_compiler()
    if mode != "auto":
        return mode == "on"
    return device_type == "cpu" and cxx_found() and (config is None or default_shapes(config))


def _report_writer(
    pipe: Any, result: Result, model_dir: Path | None, samples: int, progress: Progress
) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        progress("report", 0.0)
        if model_dir is not None and toy_judge.is_toy_model(model_dir):
            judge, probes = toy_judge.ShapeJudge(model_dir), toy_judge.probes(result.concept)
        else:
            judge, probes = None, default_probes(result.concept)
        report, picture = make_report(pipe, result, probes, judge, samples=samples, seed=result.config.seed)
        (tmp / artifacts.REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
        picture.save(tmp / artifacts.REPORT_PNG)
        progress("report", 1.0)

    return write


def run_erasure(
    model: str,
    concept: str,
    image_paths: list[Path],
    config: UnlearnConfig,
    out_dir: Path,
    *,
    device: str = "auto",
    compile_mode: str = "off",
    report_samples: int = 4,
    on_progress: Progress | None = None,
    should_cancel: Callable[[], bool] | None = None,
    pipe: Any = None,
) -> dict[str, Any]:
    """Check every input, then erase and write the artifacts; returns the manifest.

    `compile_mode`: "on", "off" or "auto", see `compiling`. Should compiling fail (a broken compiler,
    an unwritable cache), the erasure runs again uncompiled and the manifest says so.
    """
    concept = check_concept(concept)
    images = load_images(image_paths)
    source = models.resolve(model)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new --out directory")
    device_type = pipe.unet.device.type if pipe is not None else models.pick_device(device)
    compiled = compiling(compile_mode, device_type, config)  # compile=on without a compiler: refused here
    pipe = pipe or models.load(model, device_type)
    try:
        result = unlearn_concept(
            pipe, concept, images, config, on_progress=on_progress, should_cancel=should_cancel, compile=compiled
        )
    except Exception as exc:
        import torch._dynamo.exc

        if not (compiled and isinstance(exc, torch._dynamo.exc.TorchDynamoException)):
            raise
        log.warning("compiling the erasure failed (%s); erasing uncompiled", " ".join(str(exc).split())[:300])
        result = unlearn_concept(pipe, concept, images, config, on_progress=on_progress, should_cancel=should_cancel)
    local = Path(source) if Path(source).is_dir() else None
    progress = on_progress or (lambda _s, _f: None)
    extra = _report_writer(pipe, result, local, report_samples, progress) if report_samples else None
    return artifacts.write(result, out_dir, base_model=model, extra=extra)
