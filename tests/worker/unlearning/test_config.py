from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from worker.unlearning import ConfigError, UnlearnConfig
from worker.unlearning.config import markdown_table


def test_defaults_are_valid_and_serialisable():
    cfg = UnlearnConfig()
    assert UnlearnConfig.from_overrides(cfg.to_dict()) == cfg


def test_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        UnlearnConfig().rank = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rank": 0}, "rank must be between 1 and 128, got 0"),
        ({"lr": "fast"}, "lr must be a number, got 'fast'"),
        ({"steps": True}, "steps must be an integer"),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"lr": float("inf")}, "lr must be a finite number"),
        ({"layers": 100}, "layers must be between 1 and 48"),
        ({"resolution": 100}, "resolution must be a multiple of 8"),
        ({"layer_position": "middle"}, "layer_position must be one of last, first, got 'middle'"),
        ({"trajectory_points": 0}, "trajectory_points must be between 1 and 100"),
        ({"lr_schedule": "linear"}, "lr_schedule must be one of constant, cosine, got 'linear'"),
        ({"anchor_projection": 1.5}, "anchor_projection must be between 0.0 and 1.0"),
        ({"retain_prompts": ["ok", ""]}, "retain_prompts must be a list of non-empty strings"),
        ({"rnak": 4}, "unknown config field(s): rnak"),
        ("{not json", "config is not valid JSON"),
        ("[1, 2]", "config must be a JSON object"),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_them(overrides, message):
    with pytest.raises(ConfigError) as info:
        UnlearnConfig.from_overrides(overrides)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_overrides_from_json_text():
    cfg = UnlearnConfig.from_overrides('{"rank": 4, "retain_prompts": ["a cat"], "anchor": "a dog"}')
    assert (cfg.rank, cfg.retain_prompts, cfg.anchor) == (4, ("a cat",), "a dog")


def test_every_field_has_help_with_its_default():
    help_text = UnlearnConfig.help()
    assert set(help_text) == {f.name for f in dataclasses.fields(UnlearnConfig)}
    assert "(default 8)" in help_text["rank"]


def test_readme_lists_every_field_as_the_class_does():
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    assert markdown_table() in readme, "regenerate the README's table with: python -m worker.unlearning.config"
