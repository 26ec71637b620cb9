"""Arithmetic per concept by stage at a config, and the least time a GPU could take for it (prints JSON).

    python bench/flops.py [--targets toy,sd15,sd21,sdxl] [--config JSON] [--peak-tflops 989]

Counts the floating-point operations of the engine's passes (`torch.utils.flop_counter`: matrix
products, convolutions, attention; elementwise work is left out) on the real SD 1.5 / 2.1 / XL
architectures built on the meta device, so it needs neither weights nor a GPU, and on the toy
model. Each pass is counted once per sample and multiplied by what the config runs:

    learn  ti_steps x (encoder forward + backward, UNet forward + backward to the conditioning) x ti_batch
    bank   the model's own trajectories (guided, so two UNet passes per sampler step), three UNet
           passes per bank point for the targets, the encoder passes for the prompts
    erase  steps x (UNet forward + backward) x batch + steps x encoder forward + backward x (batch + retain_batch)

`seconds_at_peak` divides by `--peak-tflops` (default: the H200's dense BF16 figure, 989): no real
run gets there, so it is a floor, not an estimate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import speed
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from worker.unlearning import UnlearnConfig
from worker.unlearning.family import detect, time_ids

H200_BF16_DENSE_TFLOPS = 989.0
RETAIN_PROMPTS = 256  # the engine encodes at least this many unrelated prompts for the retain references


def pipeline(target: str, device: str = "meta"):
    """The speed bench's pipeline for `target`, on the meta device unless told otherwise."""
    return speed.pipeline(target, device)[0]


def _count(fn) -> int:
    # Attention through the math backend: the counter has no formula for every fused kernel (the
    # CPU flash kernel counts as nothing), and the math one is the same arithmetic in plain products.
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class Passes:
    """FLOPs of one sample through each pass the engine makes, at `resolution` pixels."""

    def __init__(self, pipe, resolution: int) -> None:
        self.pipe, self.fam = pipe, detect(pipe)
        self.device = pipe.unet.device
        self.latent = resolution // pipe.vae_scale_factor
        self.resolution = resolution
        self.time_ids = time_ids(pipe, resolution)
        for part in (pipe.unet, pipe.vae, *self.fam.text_encoders):
            part.requires_grad_(False)

    def _ids(self) -> tuple[torch.Tensor, ...]:
        return tuple(ids.to(self.device) for ids in self.fam.token_ids(["a photo of a cat"]))

    def encoder(self, backward: bool) -> int:
        """The text encoder(s), and with `backward` the gradient back to the token embeddings."""
        fam, ids = self.fam, self._ids()
        embeddings = [te.get_input_embeddings().weight for te in fam.text_encoders]

        def run() -> None:
            cond = fam.encode_ids(ids)
            if backward:
                total = cond.embeds.float().sum() + (0 if cond.pooled is None else cond.pooled.float().sum())
                total.backward()

        for weight in embeddings:
            weight.requires_grad_(backward)
        try:
            return _count(run)
        finally:
            for weight in embeddings:
                weight.requires_grad_(False)
                weight.grad = None

    def unet(self, backward: bool) -> int:
        """The UNet, and with `backward` the gradient back to its conditioning (its weights are frozen)."""
        cfg = self.pipe.unet.config
        x = torch.zeros(1, cfg.in_channels, self.latent, self.latent, device=self.device, dtype=self.pipe.unet.dtype)
        t = torch.tensor([500], device=self.device)
        with torch.no_grad():
            cond = self.fam.encode_ids(self._ids())
        embeds = cond.embeds.detach().requires_grad_(backward)
        kwargs = type(cond)(embeds, cond.pooled).unet_kwargs(self.time_ids)

        def run() -> None:
            out = self.pipe.unet(x, t, **kwargs).sample
            if backward:
                out.float().sum().backward()

        return _count(run)

    def vae_encode(self) -> int:
        x = torch.zeros(1, 3, self.resolution, self.resolution, device=self.device, dtype=self.pipe.vae.dtype)
        return _count(lambda: self.pipe.vae.encode(x))


def count(pipe, cfg: UnlearnConfig, images: int = 5) -> dict:
    """FLOPs per stage of one erasure at `cfg`, from the per-sample passes."""
    resolution = cfg.resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor
    p = Passes(pipe, resolution)
    with torch.no_grad():
        enc_f, unet_f, vae = p.encoder(False), p.unet(False), p.vae_encode()
    enc_fb, unet_fb = p.encoder(True), p.unet(True)
    n_model = round(cfg.bank * cfg.trajectory_share)
    trajectories = math.ceil(n_model / cfg.trajectory_points)
    stages = {
        "encode": images * vae,
        "learn": cfg.ti_steps * cfg.ti_batch * (enc_fb + unet_fb),
        "bank": (
            cfg.trajectory_steps * 2 * trajectories * unet_f  # at most: the trajectories stop at the last point drawn
            + 2 * trajectories * enc_f
            + 3 * cfg.bank * (unet_f + enc_f)  # anchor, concept and empty prompt per point
            # the anchor, forget and retain references
            + (2 * cfg.bank + max(RETAIN_PROMPTS, len(cfg.retain_prompts))) * enc_f
        ),
        "erase": cfg.steps * (cfg.batch * unet_fb + (cfg.batch + cfg.retain_batch) * enc_fb),
    }
    tflop = {k: v / 1e12 for k, v in stages.items()}
    tflop["total"] = sum(tflop.values())
    per_sample = {"encoder_fwd": enc_f, "encoder_fwd_bwd": enc_fb, "unet_fwd": unet_f, "unet_fwd_bwd": unet_fb}
    return {
        "resolution": resolution,
        "tflop": {k: round(v, 4) for k, v in tflop.items()},
        "gflop_per_sample": {k: round(v / 1e9, 3) for k, v in per_sample.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="toy,sd15,sd21,sdxl")
    p.add_argument("--config", default=None, help="JSON object of config overrides")
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_TFLOPS)
    args = p.parse_args()
    cfg = UnlearnConfig.from_overrides(args.config)
    out: dict = {
        "config": cfg.to_dict(),
        "peak_tflops": args.peak_tflops,
        "counted_with": f"torch {torch.__version__}, torch.utils.flop_counter, attention through the math backend",
        "results": {},
    }
    for target in args.targets.split(","):
        result = count(pipeline(target), cfg)
        result["seconds_at_peak"] = round(result["tflop"]["total"] / args.peak_tflops, 3)
        out["results"][target] = result
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
