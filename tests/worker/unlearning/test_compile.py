"""Compiled erasures (`compile=True`, what a CPU worker runs by default) against the plain method.

Every test here erases with the default config's shapes (only the step counts are small), so the
toy model's graphs are compiled once for the whole module.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from worker.erasure import cxx_found, run_erasure
from worker.toy import data, quality
from worker.toy.paths import toy_model_dir
from worker.unlearning import UnlearnConfig, artifacts, engine, unlearn_concept

SHORT = UnlearnConfig(ti_steps=4, steps=6, check_every=1)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not cxx_found(), reason="torch.compile needs a C++ compiler (g++) on a CPU; none here"),
]


@pytest.fixture(scope="module")
def pipe():
    return quality.load_pipeline(toy_model_dir())


@pytest.fixture
def circles():
    rng = np.random.default_rng(3)
    return [data.render("circle", color, rng) for color in data.COLORS]


@pytest.fixture
def circle_files(circles, tmp_path):
    paths = [tmp_path / f"circle{i}.png" for i in range(len(circles))]
    for image, path in zip(circles, paths, strict=True):
        image.save(path)
    return paths


def _encoder_outputs(pipe) -> torch.Tensor:
    ids = pipe.tokenizer(["a red circle", "a blue star"], padding="max_length", return_tensors="pt").input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids).last_hidden_state


def test_compiled_erasure_agrees_with_the_plain_one_and_repeats_exactly(pipe, circles):
    before = _encoder_outputs(pipe)
    plain = unlearn_concept(pipe, "circle", circles, SHORT)
    graphs = counters["stats"]["unique_graphs"]
    first = unlearn_concept(pipe, "circle", circles, SHORT, compile=True)
    compiled_graphs = counters["stats"]["unique_graphs"] - graphs
    second = unlearn_concept(pipe, "square", circles, SHORT, compile=True)
    again = unlearn_concept(pipe, "circle", circles, SHORT, compile=True)
    assert compiled_graphs >= 4  # the UNet per stage and the encoder pass ran compiled ...
    assert counters["stats"]["unique_graphs"] - graphs == compiled_graphs  # ... once: nothing recompiled
    assert first.compiled and not plain.compiled and second.compiled
    for a, b, c in zip(plain.lora, first.lora, again.lora, strict=True):
        assert a.keys() == b.keys() == c.keys()
        for key in a:
            assert torch.equal(b[key], c[key]), key  # byte-identical from run to run
            # the same method: fused kernels round differently, nothing more
            assert torch.allclose(a[key], b[key], rtol=1e-3, atol=1e-4), (key, (a[key] - b[key]).abs().max())
    assert torch.equal(before, _encoder_outputs(pipe))  # the pipeline is as it was


def test_auto_compiles_default_shapes_on_a_cpu_and_the_manifest_says_so(pipe, circle_files, tmp_path):
    other_bank = UnlearnConfig(ti_steps=4, steps=6, bank=8)  # would need graphs of its own
    for mode, config, expected in (("auto", SHORT, True), ("auto", other_bank, False), ("off", SHORT, False)):
        out = tmp_path / f"{mode}-{config.bank}"
        manifest = run_erasure(
            "toy-shapes", "circle", circle_files, config, out, compile_mode=mode, report_samples=0, pipe=pipe
        )
        assert manifest["compiled"] is expected, (mode, config.bank)
        assert json.loads((out / artifacts.MANIFEST).read_text())["compiled"] is expected


def test_a_failing_compiler_falls_back_to_the_plain_erasure(pipe, circle_files, tmp_path, monkeypatch, caplog):
    def broken(gm, example_inputs):
        raise RuntimeError("the compiler broke")

    monkeypatch.setattr(engine, "_compiled_unet", lambda unet: torch.compile(unet, backend=broken, dynamic=False))
    with caplog.at_level(logging.WARNING, logger="unlearn.worker"):
        manifest = run_erasure(
            "toy-shapes",
            "circle",
            circle_files,
            SHORT,
            tmp_path / "out",
            compile_mode="auto",
            report_samples=0,
            pipe=pipe,
        )
    assert manifest["compiled"] is False
    assert "compiling the erasure failed" in caplog.text and "the compiler broke" in caplog.text
    assert not any("lora" in n for n, _ in pipe.text_encoder.named_parameters())
