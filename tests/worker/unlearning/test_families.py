"""The whole method on a tiny random pipeline of every family; adapters load with diffusers' loaders."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.worker.unlearning.conftest import TINY
from tests.worker.unlearning.tiny import FAMILIES, tiny_pipeline
from worker.unlearning import Canceled, artifacts, unlearn_concept
from worker.unlearning.family import detect

PROBE = ["a photo of a dog", "a red cat", "a dog"]


def _encoder_outputs(pipe) -> list[torch.Tensor]:
    """What the UNet is conditioned on, per encoder (SDXL's pooled output included)."""
    outs = []
    tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if getattr(pipe, "text_encoder_2", None) else [])
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if getattr(pipe, "text_encoder_2", None) else [])
    with torch.no_grad():
        for tok, te in zip(tokenizers, encoders, strict=True):
            ids = tok(PROBE, padding="max_length", max_length=tok.model_max_length, return_tensors="pt").input_ids
            out = te(ids, output_hidden_states=True)
            outs += [out.last_hidden_state, out.hidden_states[-2], out[0]]
    return outs


def _merge(pipe, lora_file: Path) -> None:
    """Apply the diffusers-format adapter by hand, W += B @ A, as the reference the loaders must match."""
    state = load_file(lora_file)
    encoders = {"text_encoder": pipe.text_encoder, "text_encoder_2": getattr(pipe, "text_encoder_2", None)}
    for key, a in state.items():
        if ".lora_A." not in key:
            continue
        prefix, module_path = key.split(".", 1)
        module_path = module_path.split(".lora_A.")[0]
        b = state[key.replace(".lora_A.", ".lora_B.")]
        te = encoders[prefix]
        # transformers 5 names CLIPTextModel's modules without the canonical `text_model.` level.
        layer = te.get_submodule(module_path if hasattr(te, "text_model") else module_path.removeprefix("text_model."))
        with torch.no_grad():
            layer.weight += b @ a


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


def test_detects_the_family(family, tmp_path):
    assert detect(tiny_pipeline(family, tmp_path)).name == family


def test_prompts_encoded_together_get_what_each_gets_alone(family, tmp_path):
    """The eraser encodes its forget and retain prompts in one batch; no prompt may see another."""
    fam = detect(tiny_pipeline(family, tmp_path))
    ids = fam.token_ids(PROBE)
    with torch.no_grad():
        together = fam.encode_ids(ids)
        for i, prompt in enumerate(PROBE):
            alone = fam.encode([prompt])
            torch.testing.assert_close(together.rows(slice(i, i + 1)).embeds, alone.embeds)
            if alone.pooled is not None:
                torch.testing.assert_close(together.rows(slice(i, i + 1)).pooled, alone.pooled)


def test_full_method_runs_and_leaves_the_pipeline_as_it_was(family, tmp_path, images):
    pipe = tiny_pipeline(family, tmp_path)
    before, vocab = _encoder_outputs(pipe), len(pipe.tokenizer)
    seen: list[tuple[str, float]] = []
    result = unlearn_concept(pipe, "dog", images, TINY, on_progress=lambda s, f: seen.append((s, f)))
    assert result.family == family
    assert [s for s, _ in seen if _ == 1.0] == ["encode", "learn", "erase"]
    assert all(torch.equal(a, b) for a, b in zip(before, _encoder_outputs(pipe), strict=True))
    assert len(pipe.tokenizer) == vocab
    assert all(not p.requires_grad for p in pipe.text_encoder.parameters())


def test_adapters_load_with_diffusers_and_reproduce_the_erasure(family, tmp_path, images):
    result = unlearn_concept(tiny_pipeline(family, tmp_path), "dog", images, TINY)
    out = tmp_path / "out"
    manifest = artifacts.write(result, out, base_model=f"tiny-{family}")
    assert set(manifest["files"]) == {artifacts.DIFFUSERS_LORA, artifacts.KOHYA_LORA, artifacts.EMBEDS}

    reference = tiny_pipeline(family, tmp_path)
    _merge(reference, out / artifacts.DIFFUSERS_LORA)
    expected = _encoder_outputs(reference)
    original = _encoder_outputs(tiny_pipeline(family, tmp_path))
    assert not torch.allclose(expected[0], original[0]), "the adapter should change the encoder"

    for weights in (artifacts.DIFFUSERS_LORA, artifacts.KOHYA_LORA):
        fresh = tiny_pipeline(family, tmp_path)
        fresh.load_lora_weights(out, weight_name=weights)
        for got, want in zip(_encoder_outputs(fresh), expected, strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        fresh.unload_lora_weights()
        for got, want in zip(_encoder_outputs(fresh), original, strict=True):
            torch.testing.assert_close(got, want)


def test_canonical_key_names(family, tmp_path, images):
    result = unlearn_concept(tiny_pipeline(family, tmp_path), "dog", images, TINY)
    diffusers_keys = list(result.diffusers_lora())
    assert all(k.split(".", 1)[1].startswith("text_model.encoder.layers.") for k in diffusers_keys)
    kohya_keys = list(result.kohya_lora())
    prefixes = ("lora_te1_text_model_", "lora_te2_text_model_") if family == "sdxl" else ("lora_te_text_model_",)
    assert all(k.startswith(prefixes) for k in kohya_keys)
    alphas = {k: v for k, v in result.kohya_lora().items() if k.endswith(".alpha")}
    assert alphas
    assert all(float(v) == TINY.rank for v in alphas.values())


def test_lora_sits_on_the_final_layers_that_reach_the_unet(family, tmp_path, images):
    result = unlearn_concept(tiny_pipeline(family, tmp_path), "dog", images, replace(TINY, layer_position="last"))
    if family == "sdxl":
        # SDXL reads the penultimate layer; the second encoder's last layer feeds the pooled embedding.
        assert result.layers == [[1, 2], [1, 2, 3]]
    else:
        assert result.layers == [[2, 3]]
    layers = {int(k.split("layers.")[1].split(".")[0]) for k in result.diffusers_lora()}
    assert layers == {i for lst in result.layers for i in lst}


def test_lora_can_sit_on_the_first_layers(family, tmp_path, images):
    result = unlearn_concept(tiny_pipeline(family, tmp_path), "dog", images, replace(TINY, layer_position="first"))
    assert result.layers == [[0, 1]] * (2 if family == "sdxl" else 1)
    layers = {int(k.split("layers.")[1].split(".")[0]) for k in result.diffusers_lora()}
    assert layers == {0, 1}


def test_bank_from_several_points_per_trajectory(tmp_path, images):
    result = unlearn_concept(tiny_pipeline("sd1", tmp_path), "dog", images, replace(TINY, bank=10, trajectory_points=3))
    assert result.lora
    assert all(torch.isfinite(v).all() for sd in result.lora for v in sd.values())


def test_learned_token_loads_with_load_textual_inversion(family, tmp_path, images):
    result = unlearn_concept(tiny_pipeline(family, tmp_path), "dog", images, TINY)
    out = tmp_path / "out"
    artifacts.write(result, out, base_model="tiny")
    pipe = tiny_pipeline(family, tmp_path)
    state = load_file(out / artifacts.EMBEDS)
    if family == "sdxl":
        pipe.load_textual_inversion(
            state["clip_l"], token="<c>", text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer
        )
        assert set(state) == {"clip_l", "clip_g"}
    else:
        pipe.load_textual_inversion(out / artifacts.EMBEDS, token="<c>")
        ids = pipe.tokenizer("<c>", add_special_tokens=False).input_ids
        assert torch.allclose(pipe.text_encoder.get_input_embeddings().weight[ids[0]], state[result.token][0])


def test_same_inputs_and_seed_give_byte_identical_adapters(tmp_path, images):
    digests = []
    for i in range(2):
        result = unlearn_concept(tiny_pipeline("sd1", tmp_path), "dog", images, TINY)
        artifacts.write(result, tmp_path / f"run{i}", base_model="tiny")
        digests.append(
            [
                hashlib.sha256((tmp_path / f"run{i}" / n).read_bytes()).hexdigest()
                for n in (artifacts.DIFFUSERS_LORA, artifacts.KOHYA_LORA, artifacts.EMBEDS)
            ]
        )
    assert digests[0] == digests[1]


def test_cancel_stops_at_the_next_check_and_cleans_up(tmp_path, images):
    pipe = tiny_pipeline("sd1", tmp_path)
    before = _encoder_outputs(pipe)
    calls = iter(range(100))
    with pytest.raises(Canceled, match="canceled during learn"):
        unlearn_concept(pipe, "dog", images, TINY, should_cancel=lambda: next(calls) >= 1)
    calls2 = iter(range(100))
    with pytest.raises(Canceled, match="canceled during erase"):
        unlearn_concept(pipe, "dog", images, TINY, should_cancel=lambda: next(calls2) >= 2)
    assert all(torch.equal(a, b) for a, b in zip(before, _encoder_outputs(pipe), strict=True))
    assert not any("lora" in n for n, _ in pipe.text_encoder.named_parameters())
