"""A learned placeholder token, without touching the shared tokenizer or embedding matrix.

The pipeline is reused across jobs, so the eraser must leave it exactly as it found it: the
placeholder lives in copies of the tokenizers, and its vector is spliced into the embedding
output by a temporary wrapper around `token_embedding`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class _SplicedEmbedding(nn.Module):
    """`base` for every id but the placeholder's, which embeds as the learned vector.

    The placeholder's id may lie past the end of the table (the usual case) or inside it (an
    embedding table padded beyond the tokenizer's vocabulary); either way the table is not read.
    """

    def __init__(self, base: nn.Embedding, vector: torch.Tensor, placeholder_id: int) -> None:
        super().__init__()
        self.base = base
        self.vector = vector
        self.placeholder_id = placeholder_id

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids == self.placeholder_id
        out = self.base(ids.masked_fill(mask, 0))
        return torch.where(mask.unsqueeze(-1), self.vector.to(out.dtype), out)


PLACEHOLDER = "<unlearn-concept>"


def add_placeholder(tokenizers: tuple[Any, ...], token: str) -> tuple[Any, ...]:
    """Copies of `tokenizers` that know `token` as one new id, past the end of each vocabulary."""
    out = []
    for tok in tokenizers:
        tok = copy.deepcopy(tok)
        if tok.add_tokens([token]) != 1:
            raise ValueError(f"placeholder {token!r} already exists in the tokenizer")
        out.append(tok)
    return tuple(out)


def initial_vectors(text_encoders: tuple[Any, ...], tokenizers: tuple[Any, ...], concept: str) -> list[torch.Tensor]:
    """Start each placeholder at the mean embedding of the concept name's tokens."""
    vectors = []
    for te, tok in zip(text_encoders, tokenizers, strict=True):
        ids = tok(concept, add_special_tokens=False).input_ids or [tok.eos_token_id]
        table = te.get_input_embeddings().weight
        vectors.append(table[torch.tensor(ids, device=table.device)].mean(0).detach().clone().float())
    return vectors


@contextmanager
def spliced(text_encoders: tuple[Any, ...], tokenizers: tuple[Any, ...], vectors: list[torch.Tensor]) -> Iterator[None]:
    """While inside, each encoder embeds the placeholder as its vector (gradients flow to it)."""
    originals = [_embeddings(te).token_embedding for te in text_encoders]
    ids = [tok.convert_tokens_to_ids(PLACEHOLDER) for tok in tokenizers]
    try:
        for te, base, vec, pid in zip(text_encoders, originals, vectors, ids, strict=True):
            _embeddings(te).token_embedding = _SplicedEmbedding(base, vec, pid)
        yield
    finally:
        for te, base in zip(text_encoders, originals, strict=True):
            _embeddings(te).token_embedding = base


def _embeddings(te: Any) -> Any:
    return te.text_model.embeddings if hasattr(te, "text_model") else te.embeddings
