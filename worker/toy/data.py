"""Deterministic synthetic data: filled coloured shapes on white, with captions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (235, 200, 20),
}
# Templates that name a colour and a shape. The first is the canonical one.
SHAPE_TEMPLATES: tuple[str, ...] = (
    "a {color} {shape}",
    "a picture of a {color} {shape}",
    "a {shape} in {color}",
    "a drawing of a {color} {shape}",
)
# Names a shape but no colour: the colour is random.
SHAPE_ONLY_TEMPLATE = "a {shape}"
# Names no shape: the image is any shape of that colour, so such prompts give a mix.
NO_SHAPE_TEMPLATES: tuple[str, ...] = ("a {color} shape", "a picture of a {color} shape")

IMAGE_SIZE = 32
_SUPERSAMPLE = 4
_COLOR_JITTER = 18


@dataclass(frozen=True)
class Sample:
    """One rendered shape and what it shows."""

    image: Image.Image
    shape: str
    color: str


def all_captions() -> list[str]:
    """Every caption the generator can emit (the empty caption included)."""
    captions = [""]
    for color in COLORS:
        for shape in SHAPES:
            captions += [t.format(color=color, shape=shape) for t in SHAPE_TEMPLATES]
        captions += [t.format(color=color) for t in NO_SHAPE_TEMPLATES]
    captions += [SHAPE_ONLY_TEMPLATE.format(shape=shape) for shape in SHAPES]
    return captions


def _shape_points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        s = r * 0.85
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        angles = [-90.0, 30.0, 150.0]
        return [(cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a))) for a in angles]
    if shape == "star":
        points = []
        for i in range(10):
            radius = r if i % 2 == 0 else r * 0.42
            a = math.radians(-90.0 + 36.0 * i)
            points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
        return points
    raise ValueError(f"unknown shape {shape!r}")


def render(shape: str, color: str, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    """Draw one filled shape of random size and position on white, anti-aliased."""
    big = size * _SUPERSAMPLE
    r = rng.uniform(0.22, 0.40) * big
    cx = rng.uniform(r + 1, big - r - 1)
    cy = rng.uniform(r + 1, big - r - 1)
    jitter = rng.integers(-_COLOR_JITTER, _COLOR_JITTER + 1, size=3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[color], jitter, strict=True))
    canvas = Image.new("RGB", (big, big), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon(_shape_points(shape, cx, cy, r), fill=fill)
    return canvas.resize((size, size), Image.Resampling.BOX)


def sample(rng: np.random.Generator, shape: str | None = None, color: str | None = None) -> Sample:
    """One random sample; shape and colour are drawn uniformly unless given."""
    shape = shape or SHAPES[int(rng.integers(len(SHAPES)))]
    color = color or list(COLORS)[int(rng.integers(len(COLORS)))]
    return Sample(render(shape, color, rng), shape, color)


def caption_for(shape: str, color: str, rng: np.random.Generator, dropout: float = 0.1) -> str:
    """A random caption for a (shape, colour) image, following the training mixture.

    10% empty (classifier-free guidance), 15% without a shape word, 10% without a colour,
    the rest spread over the colour+shape templates.
    """
    u = rng.random()
    if u < dropout:
        return ""
    if u < dropout + 0.15:
        template = NO_SHAPE_TEMPLATES[int(rng.integers(len(NO_SHAPE_TEMPLATES)))]
        return template.format(color=color)
    if u < dropout + 0.25:
        return SHAPE_ONLY_TEMPLATE.format(shape=shape)
    template = SHAPE_TEMPLATES[int(rng.integers(len(SHAPE_TEMPLATES)))]
    return template.format(color=color, shape=shape)


def dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` balanced samples as (uint8 images NHWC, shape indices, colour indices)."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    shapes = np.arange(n) % len(SHAPES)
    colors = (np.arange(n) // len(SHAPES)) % len(COLORS)
    order = rng.permutation(n)
    shapes, colors = shapes[order], colors[order]
    color_names = list(COLORS)
    for i in range(n):
        images[i] = np.asarray(render(SHAPES[shapes[i]], color_names[colors[i]], rng))
    return images, shapes, colors
