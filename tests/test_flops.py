"""bench/flops.py: the arithmetic behind the GPU speed floor, counted without weights or a GPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import flops

from worker.unlearning import UnlearnConfig


def test_counting_on_the_meta_device_matches_counting_the_real_model():
    cfg = UnlearnConfig()
    on_meta = flops.count(flops.pipeline("toy", "meta"), cfg)
    on_cpu = flops.count(flops.pipeline("toy", "cpu"), cfg)
    assert on_meta == on_cpu
    per = on_cpu["gflop_per_sample"]
    # A backward pass to the inputs costs about as much again as the forward.
    assert 1.5 < per["unet_fwd_bwd"] / per["unet_fwd"] < 3
    assert 1.5 < per["encoder_fwd_bwd"] / per["encoder_fwd"] < 3


def test_the_erase_stage_grows_with_steps_and_the_unet_with_resolution():
    pipe = flops.pipeline("toy", "meta")
    base = flops.count(pipe, UnlearnConfig())
    double = flops.count(pipe, UnlearnConfig(steps=1600))
    assert double["tflop"]["erase"] == pytest.approx(2 * base["tflop"]["erase"], rel=1e-3)
    assert double["tflop"]["learn"] == base["tflop"]["learn"]
    bigger = flops.count(pipe, UnlearnConfig(resolution=64))
    assert bigger["gflop_per_sample"]["unet_fwd"] > 3.5 * base["gflop_per_sample"]["unet_fwd"]
    assert bigger["gflop_per_sample"]["encoder_fwd"] == base["gflop_per_sample"]["encoder_fwd"]


def test_the_real_sd21_architecture_at_the_defaults():
    result = flops.count(flops.pipeline("sd21"), UnlearnConfig())
    assert result["resolution"] == 768
    # SD 2.1's UNet at 768 px: about 2.1 TFLOP per sample forward (the 512-px SD UNet is about 0.7-0.8).
    assert 1.8e3 < result["gflop_per_sample"]["unet_fwd"] < 2.5e3
    assert result["tflop"]["erase"] > 0.7 * result["tflop"]["total"]
