"""Tiny random pipelines of every Stable Diffusion family, built in code (no download)."""

from __future__ import annotations

from pathlib import Path

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

from worker.toy.tokenizer import write_tokenizer

WORDS = ["a photo of a dog", "a picture of a red cat", "a drawing of a blue car", "an image of a tree"]
FAMILIES = ("sd1", "sd2", "sd2-v", "sdxl")


def _tokenizer(tmp: Path) -> CLIPTokenizer:
    write_tokenizer(WORDS, tmp / "tok", max_length=16)
    return CLIPTokenizer.from_pretrained(tmp / "tok")


def _text_config(tok: CLIPTokenizer, hidden_act: str, layers: int = 4) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=tok.model_max_length,
        hidden_act=hidden_act,
        projection_dim=32,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def _vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(8, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )


def _unet(cross_dim: int, xl: bool = False) -> UNet2DConditionModel:
    extra = {}
    if xl:
        extra = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 6 * 8 + 32,
            "use_linear_projection": True,
        }
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_dim,
        attention_head_dim=4,
        norm_num_groups=4,
        **extra,
    )


def tiny_pipeline(family: str, tmp: Path, seed: int = 0) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    """A random pipeline of `family` ("sd1", "sd2", "sd2-v" or "sdxl") producing 32 px images."""
    torch.manual_seed(seed)
    tok = _tokenizer(tmp)
    betas = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
    if family == "sdxl":
        te = CLIPTextModel(_text_config(tok, "quick_gelu"))
        te2 = CLIPTextModelWithProjection(_text_config(tok, "gelu"))
        pipe = StableDiffusionXLPipeline(
            vae=_vae(),
            text_encoder=te,
            text_encoder_2=te2,
            tokenizer=tok,
            tokenizer_2=tok,
            unet=_unet(64, xl=True),
            scheduler=EulerDiscreteScheduler(**betas),
        )
    else:
        prediction = "v_prediction" if family == "sd2-v" else "epsilon"
        act = "quick_gelu" if family == "sd1" else "gelu"
        pipe = StableDiffusionPipeline(
            vae=_vae(),
            text_encoder=CLIPTextModel(_text_config(tok, act)),
            tokenizer=tok,
            unet=_unet(32),
            scheduler=DDIMScheduler(**betas, prediction_type=prediction, clip_sample=False, steps_offset=1),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe
