"""Where the shipped toy-shapes model lives: in a checkout, or inside an installed wheel."""

from __future__ import annotations

from pathlib import Path

TOY_MODEL_NAME = "toy-shapes"


def toy_model_dir() -> Path:
    """The shipped model: packaged beside the code (wheel, image) or in the checkout's models/."""
    packaged = Path(__file__).resolve().parent / "_model"
    if (packaged / "model_index.json").is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "models" / TOY_MODEL_NAME
