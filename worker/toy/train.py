"""Training loops of the toy-shapes world: VAE, UNet and shape classifier.

Each loop is plain PyTorch on tensors already in memory, so the whole world builds in
minutes on two CPU cores and identically from the same seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel

from worker.toy import data
from worker.toy.model import ShapeClassifier, train_scheduler

Log = Callable[[str], None]


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _every(step: int, total: int) -> bool:
    return step == total or step % max(1, total // 10) == 0


def train_vae(vae: AutoencoderKL, images: torch.Tensor, steps: int, batch: int, log: Log) -> None:
    """Reconstruction (MSE) with a small KL term, as Stable Diffusion's VAE minus the GAN."""
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    sched = get_cosine_schedule_with_warmup(opt, 50, steps)
    vae.train()
    start = time.monotonic()
    for step in range(1, steps + 1):
        x = images[torch.randint(len(images), (batch,), device=images.device)]
        dist = vae.encode(x).latent_dist
        recon = vae.decode(dist.sample()).sample
        loss = F.mse_loss(recon, x) + 1e-6 * dist.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if _every(step, steps):
            log(f"vae step {step}/{steps} loss {loss.item():.4f} ({time.monotonic() - start:.0f}s)")
    vae.eval().requires_grad_(False)


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of each image's latent distribution, unscaled."""
    means, stds = [], []
    for chunk in images.split(512):
        dist = vae.encode(chunk).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def train_unet(
    unet: UNet2DConditionModel,
    latents: tuple[torch.Tensor, torch.Tensor],
    caption_ids: Callable[[np.ndarray], torch.Tensor],
    caption_embeds: torch.Tensor,
    steps: int,
    batch: int,
    seed: int,
    log: Log,
) -> None:
    """Epsilon-prediction denoising loss over cached (already scaled) latents, with EMA weights.

    `caption_ids(indices)` draws one caption per image index, following the training mixture
    (with caption dropout, so classifier-free guidance works).
    """
    noise_sched = train_scheduler()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3, weight_decay=1e-4)
    lr_sched = get_cosine_schedule_with_warmup(opt, 200, steps)
    ema = EMAModel(unet.parameters(), decay=0.999)
    rng = np.random.default_rng(seed)
    mean, std = latents
    unet.train()
    start = time.monotonic()
    for step in range(1, steps + 1):
        idx = rng.integers(len(mean), size=batch)
        x0 = mean[idx] + std[idx] * torch.randn_like(mean[idx])
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (batch,), device=x0.device)
        noisy = noise_sched.add_noise(x0, noise, t)
        cond = caption_embeds[caption_ids(idx)]
        loss = F.mse_loss(unet(noisy, t, cond).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        ema.step(unet.parameters())
        if _every(step, steps):
            log(f"unet step {step}/{steps} loss {loss.item():.4f} ({time.monotonic() - start:.0f}s)")
    ema.copy_to(unet.parameters())
    unet.eval().requires_grad_(False)


def _augment(x: torch.Tensor, vae: AutoencoderKL) -> torch.Tensor:
    """Make clean renders look like decoded samples: VAE round trips, blur and noise."""
    n = len(x)
    with torch.no_grad():
        roundtrip = vae.decode(vae.encode(x[: n // 2]).latent_dist.mean).sample.clamp(-1, 1)
    x = torch.cat([roundtrip, x[n // 2 :]])
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    mix = torch.rand(n, 1, 1, 1, device=x.device) * 0.6
    x = (1 - mix) * x + mix * blurred
    return (x + torch.randn_like(x) * torch.rand(n, 1, 1, 1, device=x.device) * 0.1).clamp(-1, 1)


def train_classifier(model: ShapeClassifier, vae: AutoencoderKL, steps: int, batch: int, seed: int, log: Log) -> None:
    device = next(model.parameters()).device
    """Cross-entropy on freshly rendered shapes every step, so it never sees the same image twice."""
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    lr_sched = get_cosine_schedule_with_warmup(opt, 50, steps)
    model.train()
    start = time.monotonic()
    for step in range(1, steps + 1):
        images, shapes, _ = data.dataset(batch, seed=seed * 1_000_003 + step)
        x = _augment(to_tensor(images).to(device), vae)
        loss = F.cross_entropy(model(x), torch.from_numpy(shapes).long().to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_sched.step()
        if _every(step, steps):
            log(f"classifier step {step}/{steps} loss {loss.item():.4f} ({time.monotonic() - start:.0f}s)")
    model.eval().requires_grad_(False)


@torch.no_grad()
def classifier_accuracy(model: ShapeClassifier, images: torch.Tensor, labels: np.ndarray) -> float:
    device = next(model.parameters()).device
    preds = torch.cat([model(chunk.to(device)).argmax(1).cpu() for chunk in images.split(512)])
    return float((preds.numpy() == labels).mean())


def scaling_factor(latent_means: torch.Tensor) -> float:
    """1 / std of the latents, as Stable Diffusion's VAE scaling factor is chosen."""
    return 1.0 / math.sqrt(float(latent_means.var()))
