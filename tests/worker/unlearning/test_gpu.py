"""On CUDA the engine trains under bf16 autocast; the adapter must still load and act like the CPU one."""

from __future__ import annotations

import pytest
import torch

from tests.worker.unlearning.conftest import TINY
from tests.worker.unlearning.tiny import FAMILIES, tiny_pipeline
from worker.unlearning import unlearn_concept


@pytest.mark.gpu
@pytest.mark.parametrize("family", FAMILIES)
def test_erasure_on_cuda_gives_a_finite_adapter_that_loads(family, tmp_path, images):
    pipe = tiny_pipeline(family, tmp_path).to("cuda")
    result = unlearn_concept(pipe, "dog", images, TINY)
    state = result.diffusers_lora()
    assert all(torch.isfinite(v).all() for v in state.values())
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in state.values())
    fresh = tiny_pipeline(family, tmp_path).to("cuda")
    fresh.load_lora_weights(state)
    ids = fresh.tokenizer(
        ["a dog"], padding="max_length", max_length=fresh.tokenizer.model_max_length, return_tensors="pt"
    )
    with torch.no_grad():
        out = fresh.text_encoder(ids.input_ids.cuda()).last_hidden_state
    assert torch.isfinite(out).all()
