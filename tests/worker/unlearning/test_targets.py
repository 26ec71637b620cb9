"""The forget target's anchor projection: an anchor that itself draws the concept is not a target."""

from __future__ import annotations

import torch

from worker.unlearning.engine import _overlap


def test_the_concept_part_of_an_anchor_is_removed_and_the_rest_kept():
    gen = torch.Generator().manual_seed(0)
    concept = torch.randn(3, 4, 8, 8, generator=gen)
    other = torch.randn(3, 4, 8, 8, generator=gen)
    # make `other` orthogonal to `concept`, sample by sample
    dims = (1, 2, 3)
    other = other - (other * concept).sum(dims, keepdim=True) / concept.pow(2).sum(dims, keepdim=True) * concept
    anchor = 2.0 * concept + other  # an anchor that draws the concept twice over, plus something else
    assert torch.allclose(anchor - _overlap(anchor, concept), other, atol=1e-5)


def test_an_anchor_that_points_away_from_the_concept_is_left_alone():
    concept = torch.ones(2, 4, 8, 8)
    anchor = -0.5 * concept
    assert torch.equal(_overlap(anchor, concept), torch.zeros_like(anchor))


def test_a_zero_concept_direction_removes_nothing():
    anchor = torch.randn(2, 4, 8, 8)
    assert torch.equal(_overlap(anchor, torch.zeros_like(anchor)), torch.zeros_like(anchor))
