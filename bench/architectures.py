"""The real SD 1.5, SD 2.1 and SDXL architectures, built from their configs with random weights.

Timing does not depend on weight values, so these measure speed without any download.
The tokenizer is the toy one padded to 77 tokens; only the sequence length matters for speed.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from worker.toy.paths import toy_model_dir

CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
OPENCLIP_H = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 23, "num_attention_heads": 16}
OPENCLIP_BIGG = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20}
SD_BLOCKS = {
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
}


def _text(spec: dict, act: str, with_projection: bool = False, projection: int = 768) -> Any:
    cfg = CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=projection,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        **spec,
    )
    return CLIPTextModelWithProjection(cfg) if with_projection else CLIPTextModel(cfg)


def _vae(size: int, scaling: float) -> AutoencoderKL:
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=size,
        scaling_factor=scaling,
    )


def _tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(toy_model_dir() / "tokenizer", model_max_length=77)


def build(name: str, dtype: torch.dtype, device: str) -> Any:
    """ "sd15", "sd21" (v-prediction, 768 px) or "sdxl", random weights, created on `device`.

    `device="meta"` builds the shapes only; the tests use it to check the configs and the wiring.
    """
    torch.manual_seed(0)
    betas = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
    schedulers = {
        "sdxl": EulerDiscreteScheduler(**betas),
        "sd21": DDIMScheduler(**betas, prediction_type="v_prediction", steps_offset=1, clip_sample=False),
        "sd15": DDIMScheduler(**betas, steps_offset=1, clip_sample=False),
    }
    with torch.device(device):
        pipe = _sdxl(schedulers[name]) if name == "sdxl" else _sd(name == "sd21", schedulers[name])
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


def _sdxl(scheduler: Any) -> StableDiffusionXLPipeline:
    unet = UNet2DConditionModel(
        sample_size=128,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    )
    return StableDiffusionXLPipeline(
        vae=_vae(1024, 0.13025),
        text_encoder=_text(CLIP_L, "quick_gelu"),
        text_encoder_2=_text(OPENCLIP_BIGG, "gelu", with_projection=True, projection=1280),
        tokenizer=_tokenizer(),
        tokenizer_2=_tokenizer(),
        unet=unet,
        scheduler=scheduler,
    )


def _sd(v: bool, scheduler: Any) -> StableDiffusionPipeline:
    unet = UNet2DConditionModel(
        sample_size=96 if v else 64,
        cross_attention_dim=1024 if v else 768,
        attention_head_dim=(5, 10, 20, 20) if v else 8,
        use_linear_projection=v,
        **SD_BLOCKS,
    )
    return StableDiffusionPipeline(
        vae=_vae(768 if v else 512, 0.18215),
        text_encoder=_text(OPENCLIP_H, "gelu", projection=512) if v else _text(CLIP_L, "quick_gelu"),
        tokenizer=_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
