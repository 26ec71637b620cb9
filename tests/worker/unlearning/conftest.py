from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from worker.unlearning import UnlearnConfig

# Small enough to run every family in seconds, big enough to exercise every code path.
TINY = UnlearnConfig(ti_steps=4, steps=4, bank=8, batch=2, ti_batch=2, check_every=2)


@pytest.fixture
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)) for _ in range(4)]
