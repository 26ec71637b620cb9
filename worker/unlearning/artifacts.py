"""Write an erasure's artifacts: adapters, learned token, manifest, report. Safetensors only.

Files are written into a temporary sibling directory that is renamed into place at the end,
so a failure leaves no partial output directory behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from worker.unlearning.engine import Result

DIFFUSERS_LORA = "pytorch_lora_weights.safetensors"
KOHYA_LORA = "lora_kohya.safetensors"
EMBEDS = "learned_embeds.safetensors"
MANIFEST = "manifest.json"
REPORT_JSON = "report.json"
REPORT_PNG = "report.png"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    # One metadata key only: safetensors writes several in random order, and adapters must be
    # byte-identical for the same inputs. What the file is lives in manifest.json instead.
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})


def manifest(result: Result, base_model: str, base_revision: str | None, files: dict[str, Path]) -> dict[str, Any]:
    """The job's record: what was erased from what, how, how long it took, and each file's sha256."""
    return {
        "concept": result.concept,
        "base_model": base_model,
        "base_revision": base_revision,
        "family": result.family,
        "token": result.token,
        "lora_layers": result.layers,
        "config": result.config.to_dict(),
        "timings": result.timings,
        "compiled": result.compiled,
        "losses": result.losses,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {p: _version(p) for p in ("unlearn", "torch", "diffusers", "transformers", "peft")},
        "files": {name: {"sha256": sha256(path), "size": path.stat().st_size} for name, path in sorted(files.items())},
    }


def _publishable(directory: Path) -> None:
    """mkdtemp and safetensors create owner-only files; artifacts get the usual umask permissions."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.iterdir():
        path.chmod(0o666 & ~umask)


def write(
    result: Result,
    out_dir: Path,
    *,
    base_model: str,
    base_revision: str | None = None,
    extra: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Write every artifact to `out_dir` (created; it must not hold files yet); return the manifest.

    `extra(tmp_dir)` may add files (the report) before the manifest hashes them.
    """
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _save(result.diffusers_lora(), tmp / DIFFUSERS_LORA)
        _save(result.kohya_lora(), tmp / KOHYA_LORA)
        _save(result.embeds_state_dict(), tmp / EMBEDS)
        if extra is not None:
            extra(tmp)
        files = {p.name: p for p in tmp.iterdir() if p.is_file()}
        man = manifest(result, base_model, base_revision, files)
        (tmp / MANIFEST).write_text(json.dumps(man, indent=2) + "\n")
        _publishable(tmp)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return man
