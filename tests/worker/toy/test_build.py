"""`unlearn toy build` at a tiny size: the whole recipe runs and is reproducible from its seed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from worker.toy import quality
from worker.toy.build import BuildConfig, build

TINY = BuildConfig(dataset_size=128, vae_steps=3, unet_steps=3, classifier_steps=2, eval_per_shape=1)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.safetensors"))
    }


@pytest.mark.slow
def test_tiny_build_writes_a_loadable_pipeline_and_is_deterministic(tmp_path: Path):
    first = build(tmp_path / "a", TINY, log=lambda _: None)
    build(tmp_path / "b", TINY, log=lambda _: None)
    da, db = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert sorted(p.split("/")[0] for p in da) == ["classifier", "text_encoder", "unet", "vae"]
    assert da == db
    pipe = quality.load_pipeline(tmp_path / "a")
    assert pipe.vae.config.scaling_factor == pytest.approx(first["vae_scaling_factor"])
    for name in ("README.md", "samples.png", "build_report.json", "tokenizer/vocab.json", "tokenizer/merges.txt"):
        assert (tmp_path / "a" / name).is_file(), name
