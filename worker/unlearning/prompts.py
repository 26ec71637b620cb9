"""Prompts the eraser trains on: templates x {concept name, learned token}, anchors and retain prompts.

Context words are drawn from the model's own tokenizer vocabulary (whole words only), so the
erasure sees the concept beside many other words without knowing anything about the model's
domain, and the retain prompts cover the vocabulary the concept does not use.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

# Textual-inversion style templates; "{}" is the concept (or the anchor).
TEMPLATES: tuple[str, ...] = (
    "{}",
    "a {}",
    "a photo of a {}",
    "a picture of a {}",
    "an image of a {}",
    "a drawing of a {}",
    "a painting of a {}",
    "a close-up photo of a {}",
    "a rendering of a {}",
    "a cropped photo of a {}",
)
# Templates that put a context word ("{ctx}") beside the concept. Measured on toy-shapes: composing
# every template above with every way of adding context spread the same steps over too many prompt
# shapes and erased less on every template (bench/efficacy.py, square and star: worst 6% vs 17%).
CONTEXT_TEMPLATES: tuple[str, ...] = (
    "a {ctx} {}",
    "a {} in {ctx}",
    "a picture of a {ctx} {}",
    "a {} with {ctx}",
    "{ctx} {}",
)

_WORD = re.compile(r"^[a-z]{3,}$")


@dataclass(frozen=True)
class PromptPair:
    """A prompt naming the concept and the same prompt with the anchor in its place."""

    forget: str
    anchor: str


def _fill(template: str, subject: str) -> str:
    return " ".join(template.replace("{}", subject).split()).replace(" ,", ",")


def vocabulary_words(tokenizer: Any, exclude: set[str], limit: int = 5000) -> list[str]:
    """Alphabetic end-of-word entries of the tokenizer's vocabulary, in merge order (frequent first).

    Words that overlap any of `exclude` (the concept's own words) are left out.
    """
    words = []
    for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        word = token[:-4]
        if token.endswith("</w>") and _WORD.match(word) and not any(word in e or e in word for e in exclude):
            words.append(word)
    return words[:limit]


def forget_pairs(
    names: list[str], anchor: str, words: list[str], context_share: float, n: int, rng: random.Random
) -> list[PromptPair]:
    """`n` forget prompts over templates and `names` (the concept's name, its learned token)."""
    pairs = []
    for _ in range(n):
        name = rng.choice(names)
        if words and rng.random() < context_share:
            template = rng.choice(CONTEXT_TEMPLATES).replace("{ctx}", rng.choice(words))
        else:
            template = rng.choice(TEMPLATES)
        pairs.append(PromptPair(_fill(template, name), _fill(template, anchor)))
    return pairs


def retain_prompts(words: list[str], extra: tuple[str, ...], n: int, rng: random.Random) -> list[str]:
    """Unrelated prompts: templates over one or two vocabulary words, plus the caller's own."""
    prompts = list(extra)
    while len(prompts) < n and words:
        subject = rng.choice(words)
        if rng.random() < 0.5:
            subject = f"{rng.choice(words)} {subject}"
        prompts.append(_fill(rng.choice(TEMPLATES), subject))
    return prompts
