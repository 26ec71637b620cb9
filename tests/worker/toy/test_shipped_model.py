"""The committed models/toy-shapes: loadable offline, canonical on disk, and good at its job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import CLIPTextModel

from worker.toy import data, quality, train


def test_only_safetensors_and_small(toy_dir: Path):
    files = [p for p in toy_dir.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".safetensors"}]
    assert weights
    assert all(p.suffix == ".safetensors" for p in weights), weights
    assert sum(p.stat().st_size for p in weights) <= 20 * 1024 * 1024


def test_loads_offline_as_a_plain_stable_diffusion_pipeline(toy_pipe):
    assert type(toy_pipe).__name__ == "StableDiffusionPipeline"
    assert toy_pipe.text_encoder.config.num_hidden_layers >= 4
    assert toy_pipe.safety_checker is None


def test_text_encoder_file_uses_canonical_key_names(toy_dir: Path):
    with safe_open(toy_dir / "text_encoder" / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert keys
    assert all(k.startswith("text_model.") for k in keys)


def test_text_encoder_weights_are_the_files_not_a_random_init(toy_dir: Path):
    """transformers silently initialises at random when key names don't match; catch that."""
    a = CLIPTextModel.from_pretrained(toy_dir / "text_encoder")
    torch.manual_seed(12345)
    b = CLIPTextModel.from_pretrained(toy_dir / "text_encoder")
    with safe_open(toy_dir / "text_encoder" / "model.safetensors", "pt") as f:
        stored = f.get_tensor("text_model.encoder.layers.3.mlp.fc2.weight")
    assert torch.equal(a.encoder.layers[3].mlp.fc2.weight, stored)
    assert torch.equal(a.encoder.layers[3].mlp.fc2.weight, b.encoder.layers[3].mlp.fc2.weight)


def test_tokenizer_ships_vocab_and_merges(toy_dir: Path):
    assert (toy_dir / "tokenizer" / "vocab.json").is_file()
    assert (toy_dir / "tokenizer" / "merges.txt").is_file()


def test_classifier_is_at_least_99_percent_on_clean_held_out_images(toy_dir: Path, classifier):
    images, shapes, _ = data.dataset(800, seed=424242)
    assert train.classifier_accuracy(classifier, train.to_tensor(images), shapes) >= 0.99


def test_model_card_reports_the_quality_bar(toy_dir: Path):
    report = json.loads((toy_dir / "build_report.json").read_text())
    assert report["eval"]["per_shape"] >= 64
    worst = min(v for per_shape in report["shape_accuracy"].values() for v in per_shape.values())
    assert worst >= 0.90
    card = (toy_dir / "README.md").read_text()
    assert "a {color} {shape}" in card or "`a {color} {shape}`" in card
    assert (toy_dir / "samples.png").is_file()


@pytest.mark.slow
def test_draws_the_prompted_shape(toy_pipe, classifier):
    """A smaller sample of the quality bench, against a looser bound: a broken model fails here."""
    n = 8
    for template in ("a {color} {shape}", "a {shape} in {color}"):
        prompts = [p for shape in data.SHAPES for p in quality.prompts_for(template, shape, n)]
        labels = quality.classify(classifier, quality.generate(toy_pipe, prompts, seed=3))
        for k, shape in enumerate(data.SHAPES):
            hits = sum(label == shape for label in labels[k * n : (k + 1) * n])
            assert hits >= 6, f"{template!r}: only {hits}/{n} samples of {shape} look like one"


@pytest.mark.slow
def test_prompt_without_a_shape_word_gives_a_mix(toy_pipe, classifier):
    labels = quality.classify(classifier, quality.generate(toy_pipe, ["a red shape"] * 32, seed=5))
    assert len(set(labels)) >= 3, labels


@pytest.mark.slow
def test_classifier_free_guidance_changes_the_image(toy_pipe):
    cond = quality.generate(toy_pipe, ["a blue star"], seed=1, guidance=4.0)
    uncond = quality.generate(toy_pipe, ["a blue star"], seed=1, guidance=1.0)
    assert (cond - uncond).abs().mean() > 0.01


@pytest.mark.slow
def test_colour_follows_the_prompt(toy_pipe):
    images = quality.generate(toy_pipe, ["a red square", "a blue square"], seed=2)
    px = images.permute(0, 2, 3, 1).reshape(2, -1, 3).numpy()
    body = [p[(p < 0.8).any(axis=1)] for p in px]  # non-white pixels
    red, blue = (np.median(b, axis=0) for b in body)
    assert red[0] > red[2]
    assert blue[2] > blue[0]
