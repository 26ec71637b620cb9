"""The concept's example images: checked, squared, and encoded to latents once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from worker.unlearning.errors import InputError

MAX_IMAGES = 20


def check_count(n: int) -> None:
    """1 to MAX_IMAGES example images, or an InputError saying so."""
    if not n:
        raise InputError(f"no images given: pass 1 to {MAX_IMAGES} example images of the concept")
    if n > MAX_IMAGES:
        raise InputError(f"too many images: {n} given, at most {MAX_IMAGES}")


def load_images(paths: list[Path]) -> list[Image.Image]:
    """Open and fully decode every file; a file that is not an image is an InputError naming it."""
    check_count(len(paths))
    images = []
    for path in paths:
        try:
            with Image.open(path) as img:
                img.load()
                images.append(img.convert("RGB"))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
            raise InputError(f"{path.name}: not a readable image ({type(exc).__name__})") from None
    return images


def to_tensor(images: list[Image.Image], size: int) -> torch.Tensor:
    """Centre-crop to a square, resize to `size`, and scale to [-1, 1], NCHW float32."""
    out = []
    for img in images:
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        square = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
        out.append(torch.from_numpy(np.asarray(square, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1))
    return torch.stack(out)


@torch.no_grad()
def encode(vae: Any, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Scaled latents of the images and of their mirror images (the VAE runs once, in fp32)."""
    pixels = torch.cat([pixels, pixels.flip(-1)])
    dtype = vae.dtype
    if dtype != torch.float32:  # fp16 VAEs overflow when encoding; this runs once, so fp32 is cheap
        vae.to(torch.float32)
    try:
        dist = vae.encode(pixels.to(vae.device)).latent_dist
        noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean)
        latents = dist.mean + dist.std * noise
    finally:
        if dtype != torch.float32:
            vae.to(dtype)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (latents - shift) * vae.config.scaling_factor
