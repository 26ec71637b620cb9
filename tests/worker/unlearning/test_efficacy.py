"""One erasure on the shipped toy model at the default config, against looser bounds than the bench.

bench/efficacy.py measures every shape with 64 samples per template; this keeps a regression in
the method from reaching main.
"""

from __future__ import annotations

import numpy as np
import pytest

from worker.toy import data, quality
from worker.toy.paths import toy_model_dir
from worker.unlearning import UnlearnConfig, unlearn_concept
from worker.unlearning.report import erased

N = 16


def _share(pipe, clf, template: str, shape: str, seed: int) -> float:
    labels = quality.classify(clf, quality.generate(pipe, quality.prompts_for(template, shape, N), seed=seed))
    return sum(label == shape for label in labels) / N


@pytest.mark.slow
def test_default_config_erases_star_and_keeps_the_other_shapes():
    pipe = quality.load_pipeline(toy_model_dir())
    clf = quality.load_classifier(toy_model_dir())
    rng = np.random.default_rng(1234)
    images = [data.render("star", color, rng) for color in [*data.COLORS, "red"]]
    result = unlearn_concept(pipe, "star", images, UnlearnConfig())
    with erased(pipe, result):
        shares = {
            t: _share(pipe, clf, t, "star", seed=1)
            for t in ("a {color} {shape}", "a drawing of a {color} {shape}", "a {shape}")
        }
        kept = {s: _share(pipe, clf, "a {color} {shape}", s, seed=2) for s in ("circle", "square", "triangle")}
    # Star is the shape this model draws when a prompt names none, the hardest to erase. Bounds
    # below what bench/efficacy.py measured (erase rate >= 95% on every template, other shapes kept
    # >= 95%), so only a real regression fails; the bench owns the targets.
    assert max(shares.values()) <= 0.25, shares
    assert min(kept.values()) >= 0.8, kept
    # and the pipeline is itself again
    assert _share(pipe, clf, "a {color} {shape}", "star", seed=1) >= 0.8
