from __future__ import annotations

import numpy as np

from worker.toy import data


def test_dataset_is_deterministic_for_a_seed_and_differs_across_seeds():
    a, sa, ca = data.dataset(64, seed=7)
    b, sb, cb = data.dataset(64, seed=7)
    c, _, _ = data.dataset(64, seed=8)
    assert a.tobytes() == b.tobytes()
    assert (sa == sb).all()
    assert (ca == cb).all()
    assert a.tobytes() != c.tobytes()


def test_dataset_is_balanced_over_shapes_and_colors():
    _, shapes, colors = data.dataset(4 * 4 * 10, seed=0)
    assert np.bincount(shapes).tolist() == [40] * 4
    assert np.bincount(colors).tolist() == [40] * 4


def test_images_are_a_coloured_shape_on_white():
    rng = np.random.default_rng(0)
    for shape in data.SHAPES:
        img = np.asarray(data.render(shape, "blue", rng)).astype(int)
        assert img.shape == (data.IMAGE_SIZE, data.IMAGE_SIZE, 3)
        white = (img > 245).all(axis=2)
        blue = (img[..., 2] > 150) & (img[..., 0] < 90)
        assert white.mean() > 0.3, "background should be mostly white"
        assert blue.sum() > 20, f"{shape} should have a solid blue body"
        corners = img[[0, 0, -1, -1], [0, -1, 0, -1]]
        assert (corners > 200).all() or white[0, 0] or white[-1, -1]


def test_size_and_position_vary():
    rng = np.random.default_rng(1)
    areas = {int((np.asarray(data.render("square", "red", rng)) < 200).any(axis=2).sum()) for _ in range(10)}
    assert len(areas) > 5


def test_caption_mixture_covers_every_kind_of_caption():
    rng = np.random.default_rng(0)
    captions = [data.caption_for("star", "red", rng) for _ in range(2000)]
    assert "" in captions  # caption dropout, for classifier-free guidance
    assert "a red star" in captions
    assert "a picture of a red star" in captions
    assert "a star in red" in captions
    assert "a star" in captions
    no_shape = [c for c in captions if c and "star" not in c]
    assert no_shape
    assert all("shape" in c for c in no_shape)
    assert 0.05 < captions.count("") / len(captions) < 0.15
    assert set(captions) <= set(data.all_captions())
