"""The model card (README.md) written beside the toy-shapes model."""

from __future__ import annotations

from typing import Any

from worker.toy import data


def _quality_table(acc: dict[str, dict[str, float]]) -> str:
    head = "| template | " + " | ".join(data.SHAPES) + " |"
    rule = "| --- |" + " ---: |" * len(data.SHAPES)
    rows = [f"| `{t}` | " + " | ".join(f"{v[s]:.0%}" for s in data.SHAPES) + " |" for t, v in acc.items()]
    return "\n".join([head, rule, *rows])


def model_card(report: dict[str, Any]) -> str:
    cfg = report["config"]
    params = report["parameters"]
    ev = report["eval"]
    t = report["timings"]
    templates = "\n".join(f"- `{tpl}`" for tpl in (*data.SHAPE_TEMPLATES, data.SHAPE_ONLY_TEMPLATE))
    no_shape = ", ".join(f"`{tpl}`" for tpl in data.NO_SHAPE_TEMPLATES)
    return f"""# toy-shapes

A tiny Stable Diffusion pipeline (diffusers `StableDiffusionPipeline`) that draws filled coloured
shapes, built from scratch by `unlearn toy build` so that the unlearning engine can be tested on a
real diffusion model that knows real concepts, with nothing downloaded. Load it with
`StableDiffusionPipeline.from_pretrained("models/toy-shapes")`.

## Data
Synthetic and deterministic (`worker/toy/data.py`, seed {cfg["seed"]}): one filled shape
({", ".join(data.SHAPES)}) in one colour ({", ".join(data.COLORS)}), random size and position,
anti-aliased, on white, {data.IMAGE_SIZE}x{data.IMAGE_SIZE} px; {cfg["dataset_size"]} training images.
Each training step draws a caption per image: 10% empty (for classifier-free guidance), 15% with no
shape word ({no_shape}; over every shape, so such prompts give a mix), 10% `a {{shape}}`, the
rest from:

{templates}

## Architecture
| part | what | parameters |
| --- | --- | ---: |
| tokenizer | CLIP BPE, {report["vocab_size"]} entries (256 byte symbols, with and without `</w>`, the captions' merges, 2 specials); unknown words tokenize by characters | - |
| text_encoder | `CLIPTextModel`, 4 layers, width 64, 4 heads, 77 positions; random and frozen | {params["text_encoder"]:,} |
| vae | `AutoencoderKL`, 2 blocks (32, 64), 4 latent channels, 32 px -> 16x16 latents, scaling factor {report["vae_scaling_factor"]:.4f} | {params["vae"]:,} |
| unet | `UNet2DConditionModel`, blocks (32, 64), cross-attention at 8x8, epsilon prediction | {params["unet"]:,} |
| scheduler | `DDIMScheduler`, Stable Diffusion's scaled-linear betas (0.00085-0.012, 1000 steps) | - |
| classifier | small CNN in `classifier/` (safetensors), used by the benchmarks | {params["classifier"]:,} |

## Training
- VAE: {cfg["vae_steps"]} steps, batch {cfg["vae_batch"]}, AdamW 1e-3, MSE + 1e-6 KL.
- UNet: {cfg["unet_steps"]} steps, batch {cfg["unet_batch"]}, AdamW 1e-3 cosine, EMA 0.999, on latents cached once.
- Classifier: {cfg["classifier_steps"]} steps, batch {cfg["classifier_batch"]}, fresh renders every step,
  half of them passed through the VAE, plus blur and noise.
- Build time: {t["total_s"] / 60:.1f} min in all (VAE {t["vae_s"]:.0f} s, UNet {t["unet_s"]:.0f} s) on {report["machine"]}.

## Measured quality
Classifier accuracy on 2000 held-out clean images: {report["classifier_accuracy"]:.2%}.

Share of samples the classifier labels as the prompted shape ({ev["per_shape"]} samples per shape and
template, colours cycled, {ev["steps"]} DDIM steps, guidance {ev["guidance"]}); `bench/toy_quality.py` reproduces it:

{_quality_table(report["shape_accuracy"])}

![samples](samples.png)

`samples.png`: rows are shapes, columns colours (two samples each), prompt `a {{color}} {{shape}}`.

## Limits
The text encoder is random: it knows no language, only these captions' tokens. Prompts with no
shape word fall back to the model's mix of shapes. This model exists for tests and benchmarks.
"""
