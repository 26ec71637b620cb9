"""Compiled erasures (`compile=True`, what a CPU worker runs by default) against the plain method.

The config has the shapes of tests/worker/test_jobrunner.py's jobs, so one pytest process
compiles the toy model's graphs once for both.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

from worker.erasure import run_erasure
from worker.toy import data, quality
from worker.toy.paths import toy_model_dir
from worker.unlearning import UnlearnConfig, artifacts, unlearn_concept

QUICK = UnlearnConfig(ti_steps=4, steps=6, bank=8, check_every=1)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipe():
    return quality.load_pipeline(toy_model_dir())


@pytest.fixture
def circles():
    rng = np.random.default_rng(3)
    return [data.render("circle", color, rng) for color in data.COLORS]


def _encoder_outputs(pipe) -> torch.Tensor:
    ids = pipe.tokenizer(["a red circle", "a blue star"], padding="max_length", return_tensors="pt").input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids).last_hidden_state


def test_compiled_erasure_agrees_with_the_plain_one_and_repeats_exactly(pipe, circles):
    before = _encoder_outputs(pipe)
    plain = unlearn_concept(pipe, "circle", circles, QUICK)
    first, second = (unlearn_concept(pipe, "circle", circles, QUICK, compile=True) for _ in range(2))
    assert first.compiled and not plain.compiled
    for a, b, c in zip(plain.lora, first.lora, second.lora, strict=True):
        assert a.keys() == b.keys() == c.keys()
        for key in a:
            assert torch.equal(b[key], c[key]), key  # byte-identical from run to run
            # the same method: fused kernels round differently, nothing more
            assert torch.allclose(a[key], b[key], rtol=1e-3, atol=1e-4), (key, (a[key] - b[key]).abs().max())
    assert type(pipe.unet) is UNet2DConditionModel  # the pipeline's own UNet was not replaced
    assert torch.equal(before, _encoder_outputs(pipe))


def test_auto_compiles_on_a_cpu_and_the_manifest_says_so(pipe, circles, tmp_path):
    paths = []
    for i, image in enumerate(circles):
        paths.append(tmp_path / f"circle{i}.png")
        image.save(paths[-1])
    for mode, expected in (("auto", True), ("off", False)):
        out = tmp_path / mode
        manifest = run_erasure("toy-shapes", "circle", paths, QUICK, out, compile=mode, report_samples=0, pipe=pipe)
        assert manifest["compiled"] is expected
        assert json.loads((out / artifacts.MANIFEST).read_text())["compiled"] is expected
