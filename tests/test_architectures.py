"""The speed bench's real SD 1.5 / 2.1 / XL architectures, built on the meta device (shapes only).

They cannot run on a CPU in reasonable time; this checks their configs and that the engine's
family detection, LoRA layer choice and UNet conditioning fit the real sizes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import architectures

from worker.unlearning.family import detect, time_ids


@pytest.mark.parametrize(
    ("name", "family", "unet_millions", "layers"),
    [
        ("sd15", "sd1", 860, [[10, 11]]),
        ("sd21", "sd2-v", 866, [[21, 22]]),
        ("sdxl", "sdxl", 2567, [[9, 10], [29, 30, 31]]),
    ],
)
def test_real_architecture_wiring(name, family, unet_millions, layers):
    pipe = architectures.build(name, torch.float32, "meta")
    fam = detect(pipe)
    assert fam.name == family
    assert round(sum(p.numel() for p in pipe.unet.parameters()) / 1e6) == unet_millions
    assert [fam.lora_layers(i, 2) for i in range(len(fam.text_encoders))] == layers
    size = pipe.unet.config.sample_size
    cond = fam.encode(["a photo of a cat", "a dog"])
    x = torch.empty(2, 4, size, size, device="meta")
    out = pipe.unet(x, torch.tensor([10, 500], device="meta"), **cond.unet_kwargs(time_ids(pipe, size * 8))).sample
    assert out.shape == x.shape
