"""What differs between Stable Diffusion families: text encoders, conditioning, prediction type.

SD 1.x and 2.x condition the UNet on the last hidden state of one CLIP text encoder. SDXL
concatenates the penultimate hidden states of two encoders and adds the second one's pooled,
projected output plus six size/crop numbers (`time_ids`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from worker.unlearning.errors import ModelError


@dataclass(frozen=True)
class Conditioning:
    """What the UNet receives for a batch of prompts."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    def unet_kwargs(self, time_ids: torch.Tensor | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"encoder_hidden_states": self.embeds}
        if self.pooled is not None:
            assert time_ids is not None
            ids = time_ids.to(self.pooled).expand(len(self.pooled), -1)
            kwargs["added_cond_kwargs"] = {"text_embeds": self.pooled, "time_ids": ids}
        return kwargs

    def rows(self, idx: torch.Tensor | slice) -> Conditioning:
        return Conditioning(self.embeds[idx], None if self.pooled is None else self.pooled[idx])


@dataclass(frozen=True)
class Family:
    """A pipeline's family and the parts of it the eraser uses."""

    name: str  # "sd1", "sd2", "sd2-v" or "sdxl"
    tokenizers: tuple[Any, ...]
    text_encoders: tuple[Any, ...]
    prediction_type: str

    @property
    def is_xl(self) -> bool:
        return self.name == "sdxl"

    def lora_layers(self, encoder_index: int, k: int, first: bool = False) -> list[int]:
        """Indices of the final `k` layers whose output reaches the UNet (with `first`, the first `k`).

        SDXL reads the penultimate hidden state, so its last `k` feeding layers end one earlier;
        the very last layer of the second encoder still matters, through the pooled embedding.
        """
        n = self.text_encoders[encoder_index].config.num_hidden_layers
        if first:
            return list(range(min(k, n)))
        if not self.is_xl:
            return list(range(max(0, n - k), n))
        last = n if encoder_index == 1 else n - 1
        return list(range(max(0, n - 1 - k), last))

    def tokenize(self, prompts: list[str], index: int) -> torch.Tensor:
        tok = self.tokenizers[index]
        return tok(
            prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids

    def token_ids(self, prompts: list[str]) -> tuple[torch.Tensor, ...]:
        """`prompts` as padded token ids, one tensor per tokenizer (rows can be indexed and joined)."""
        return tuple(self.tokenize(prompts, i) for i in range(len(self.tokenizers)))

    def encode(self, prompts: list[str]) -> Conditioning:
        """UNet conditioning for `prompts` through the encoders as they are now (with any LoRA)."""
        return self.encode_ids(self.token_ids(prompts))

    def encode_ids(self, ids: tuple[torch.Tensor, ...]) -> Conditioning:
        """`encode` for prompts already tokenized by `token_ids`."""
        if not self.is_xl:
            te = self.text_encoders[0]
            return Conditioning(te(ids[0].to(te.device)).last_hidden_state)
        hidden, pooled = [], None
        for i, te in enumerate(self.text_encoders):
            out = te(ids[i].to(te.device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            if i == 1:
                pooled = out.text_embeds
        return Conditioning(torch.cat(hidden, dim=-1), pooled)


def detect(pipe: Any) -> Family:
    """The family of a diffusers Stable Diffusion pipeline; anything else is a ModelError."""
    te = getattr(pipe, "text_encoder", None)
    te2 = getattr(pipe, "text_encoder_2", None)
    unet = getattr(pipe, "unet", None)
    if unet is None or getattr(pipe, "vae", None) is None:
        raise ModelError(f"{type(pipe).__name__} is not a Stable Diffusion pipeline (no UNet or VAE)")
    prediction = pipe.scheduler.config.get("prediction_type", "epsilon")
    if te2 is not None:
        if te is None:
            raise ModelError("SDXL refiner-style pipelines (one text encoder, text_encoder_2 only) are not supported")
        return Family("sdxl", (pipe.tokenizer, pipe.tokenizer_2), (te, te2), prediction)
    if te is None:
        raise ModelError(f"{type(pipe).__name__} has no text encoder to erase from")
    name = "sd1" if te.config.hidden_size < 1024 and te.config.hidden_act == "quick_gelu" else "sd2"
    if prediction == "v_prediction":
        name = "sd2-v"
    return Family(name, (pipe.tokenizer,), (te,), prediction)


def time_ids(pipe: Any, size: int) -> torch.Tensor | None:
    """SDXL's (original size, crop, target size) conditioning for square images of `size` pixels."""
    if getattr(pipe, "text_encoder_2", None) is None:
        return None
    return torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32)
