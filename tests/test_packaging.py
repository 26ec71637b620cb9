"""The wheel carries the toy model, and an installed copy finds it without a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_wheel_finds_the_shipped_toy_model(tmp_path: Path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("unlearn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "worker/toy/_model/model_index.json" in names
    assert "worker/toy/_model/unet/diffusion_pytorch_model.safetensors" in names
    assert "worker/toy/_model/classifier/model.safetensors" in names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    # -S: no site-packages, so the checkout's editable install cannot answer instead.
    found = subprocess.run(
        [sys.executable, "-S", "-c", "from worker.toy.paths import toy_model_dir; print(toy_model_dir())"],
        env={"PYTHONPATH": str(site)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(found).is_relative_to(site)
    assert (Path(found) / "model_index.json").is_file()
