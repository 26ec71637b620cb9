"""LoRA adapters on layers of the text encoder(s), and their export formats.

Exported weights carry the LoRA scale (alpha / rank) folded into `lora_B`, so every format can
state alpha = rank and no loader can get the scale wrong. Keys use the canonical
`text_model.` level that published checkpoints, transformers 4.x, A1111 and ComfyUI expect
(transformers 5 drops it when it names modules).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

ADAPTER = "unlearn"
TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def attach(text_encoders: tuple[Any, ...], layer_lists: list[list[int]], rank: int, alpha: int) -> list[Any]:
    """Add a fresh LoRA to each encoder's listed layers; return the trainable parameters."""
    params = []
    for te, layers in zip(text_encoders, layer_lists, strict=True):
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            init_lora_weights="gaussian",
            target_modules=TARGETS,
            layers_to_transform=layers,
            layers_pattern="layers",
        )
        te.add_adapter(config, adapter_name=ADAPTER)
        te.set_adapter(ADAPTER)
        params += [p for n, p in te.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    return params


def detach(text_encoders: tuple[Any, ...]) -> None:
    """Remove the adapter so the encoders compute exactly what they did before `attach`."""
    for te in text_encoders:
        te.delete_adapter(ADAPTER)
        te.requires_grad_(False)


def _canonical(key: str) -> str:
    return key if key.startswith("text_model.") else f"text_model.{key}"


def folded_state_dict(te: Any, rank: int, alpha: int) -> dict[str, torch.Tensor]:
    """The encoder's LoRA weights in peft naming (canonical keys), scale folded into lora_B, fp32."""
    state = get_peft_model_state_dict(te, adapter_name=ADAPTER)
    scale = alpha / rank
    out = {}
    for key, value in state.items():
        value = value.detach().float().cpu().contiguous()
        out[_canonical(key)] = value * scale if ".lora_B." in key else value.clone()
    return out


def diffusers_state_dict(per_encoder: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Keys as `pipe.load_lora_weights` expects: `text_encoder.` / `text_encoder_2.` prefixes."""
    prefixes = ["text_encoder", "text_encoder_2"]
    return {f"{prefixes[i]}.{k}": v for i, sd in enumerate(per_encoder) for k, v in sd.items()}


def kohya_state_dict(per_encoder: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """kohya / A1111 / ComfyUI names: `lora_te_` for one encoder, `lora_te1_` / `lora_te2_` for SDXL."""
    kohya = convert_state_dict_to_kohya(diffusers_state_dict(per_encoder))
    if len(per_encoder) == 1:
        kohya = {k.replace("lora_te1_", "lora_te_", 1): v for k, v in kohya.items()}
    return {k: v.float().contiguous() if v.is_floating_point() else v.float() for k, v in kohya.items()}
