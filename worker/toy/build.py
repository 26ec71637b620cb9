"""`unlearn toy build`: rebuild the toy-shapes pipeline and its classifier from a seed."""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

from worker.toy import card, data, model, quality, tokenizer, train
from worker.toy.train import Log


@dataclass(frozen=True)
class BuildConfig:
    """Sizes of the build. The defaults are what models/toy-shapes was built with."""

    seed: int = 0
    dataset_size: int = 16384
    vae_steps: int = 1200
    vae_batch: int = 32
    unet_steps: int = 4000
    unet_batch: int = 64
    classifier_steps: int = 800
    classifier_batch: int = 128
    eval_per_shape: int = 64


def _caption_table(tok: CLIPTokenizer, te: CLIPTextModel) -> tuple[list[str], torch.Tensor]:
    """Every caption and its frozen text-encoder output (computed once; the encoder never trains)."""
    captions = data.all_captions()
    ids = tok(captions, padding="max_length", max_length=tok.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        embeds = te(ids).last_hidden_state
    return captions, embeds


def _caption_sampler(captions: list[str], shapes: np.ndarray, colors: np.ndarray, seed: int):  # noqa: ANN202
    index = {c: i for i, c in enumerate(captions)}
    rng = np.random.default_rng(seed)
    color_names = list(data.COLORS)

    def caption_ids(idx: np.ndarray) -> torch.Tensor:
        picked = [index[data.caption_for(data.SHAPES[shapes[i]], color_names[colors[i]], rng)] for i in idx]
        return torch.tensor(picked)

    return caption_ids


def _save_text_encoder(te: CLIPTextModel, out: Path) -> None:
    """Write the encoder with the canonical `text_model.` key names every published checkpoint uses.

    transformers 5 drops that level when saving; transformers 4.x and other tools then fail to
    load the weights, or silently start from random ones.
    """
    te.save_pretrained(out)
    state = {f"text_model.{k}": v.contiguous() for k, v in te.state_dict().items()}
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})


def _save_pipeline(parts: dict, tok_dir: Path, out_dir: Path) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline(
        vae=parts["vae"],
        text_encoder=parts["te"],
        tokenizer=parts["tok"],
        unet=parts["unet"],
        scheduler=model.sample_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out_dir, safe_serialization=True)
    shutil.rmtree(out_dir / "tokenizer")
    shutil.copytree(tok_dir, out_dir / "tokenizer")
    _save_text_encoder(parts["te"], out_dir / "text_encoder")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build(out_dir: Path, cfg: BuildConfig, log: Log, device: str = "cpu") -> dict:
    """Train every part, write the model directory to `out_dir` (replacing it), return measurements."""
    torch.manual_seed(cfg.seed)
    timings: dict[str, float] = {}
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = Path(tmp) / "tokenizer"
        vocab_size = tokenizer.write_tokenizer(data.all_captions(), tok_dir)
        tok = CLIPTokenizer.from_pretrained(tok_dir)
        te = model.text_encoder(vocab_size, tok.bos_token_id, tok.eos_token_id).eval().requires_grad_(False)
        captions, embeds = _caption_table(tok, te)
        embeds = embeds.to(device)
        images, shapes, colors = data.dataset(cfg.dataset_size, seed=cfg.seed)
        x = train.to_tensor(images).to(device)

        vae = model.vae().to(device)
        train.train_vae(vae, x, cfg.vae_steps, cfg.vae_batch, log)
        mean, std = train.encode_latents(vae, x)
        sf = train.scaling_factor(mean)
        vae.register_to_config(scaling_factor=sf)
        timings["vae_s"] = time.monotonic() - start

        unet = model.unet().to(device)
        sampler = _caption_sampler(captions, shapes, colors, cfg.seed + 1)
        train.train_unet(
            unet, (mean * sf, std * sf), sampler, embeds, cfg.unet_steps, cfg.unet_batch, cfg.seed + 2, log
        )
        timings["unet_s"] = time.monotonic() - start - timings["vae_s"]

        clf = model.ShapeClassifier().to(device)
        train.train_classifier(clf, vae, cfg.classifier_steps, cfg.classifier_batch, cfg.seed + 3, log)
        held_images, held_shapes, _ = data.dataset(2000, seed=cfg.seed + 10_000)
        clf_acc = train.classifier_accuracy(clf, train.to_tensor(held_images), held_shapes)
        log(f"classifier accuracy on held-out clean images: {clf_acc:.4f}")
        timings["train_s"] = time.monotonic() - start

        if out_dir.exists():
            shutil.rmtree(out_dir)
        parts = {"vae": vae.cpu(), "te": te, "tok": tok, "unet": unet.cpu()}
        pipe = _save_pipeline(parts, tok_dir, out_dir).to(device)
    quality.save_classifier(clf.cpu(), out_dir)
    clf.to(device)
    quality.sample_grid(pipe, seed=cfg.seed).save(out_dir / "samples.png")
    log("evaluating: generating samples for every template and shape")
    acc = quality.shape_accuracy(pipe, clf, cfg.eval_per_shape, seed=cfg.seed)
    timings["total_s"] = time.monotonic() - start
    report = {
        "config": asdict(cfg),
        "vocab_size": vocab_size,
        "vae_scaling_factor": sf,
        "classifier_accuracy": clf_acc,
        "shape_accuracy": acc,
        "eval": {"steps": quality.EVAL_STEPS, "guidance": quality.EVAL_GUIDANCE, "per_shape": cfg.eval_per_shape},
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "parameters": {
            "unet": sum(p.numel() for p in unet.parameters()),
            "vae": sum(p.numel() for p in vae.parameters()),
            "text_encoder": sum(p.numel() for p in te.parameters()),
            "classifier": sum(p.numel() for p in clf.parameters()),
        },
    }
    (out_dir / "build_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "README.md").write_text(card.model_card(report))
    return report
