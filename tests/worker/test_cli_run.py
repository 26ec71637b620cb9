"""`unlearn run`: a real erasure on the shipped model, and every kind of bad input refused cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from worker.toy import data
from worker.unlearning import artifacts

QUICK = '{"ti_steps": 4, "steps": 4, "bank": 8}'


def _unlearn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture
def stars(tmp_path: Path) -> Path:
    folder = tmp_path / "stars"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, color in enumerate(data.COLORS):
        data.render("star", color, rng).save(folder / f"star{i}.png")
    return folder


def _run(out: Path, *extra: str, images: list[str], concept: str = "star", model: str = "toy-shapes"):
    args = ["run", "--model", model, "--concept", concept, "--out", str(out), "--images", *images]
    return _unlearn(*args, *extra)


@pytest.mark.slow
def test_run_prints_the_manifest_and_writes_every_artifact(tmp_path: Path, stars: Path):
    out = tmp_path / "out"
    result = _run(out, "--config", QUICK, "--report-samples", "1", images=[str(stars)])
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["concept"] == "star"
    assert manifest["base_model"] == "toy-shapes"
    assert manifest["config"]["steps"] == 4
    assert {"encode_s", "learn_s", "erase_s", "total_s"} <= set(manifest["timings"])
    assert manifest["compiled"] is False  # one run: compiling would not pay for itself
    names = {p.name for p in out.iterdir()}
    expected = {artifacts.DIFFUSERS_LORA, artifacts.KOHYA_LORA, artifacts.EMBEDS, artifacts.REPORT_JSON}
    assert expected | {artifacts.REPORT_PNG, artifacts.MANIFEST} == names
    for name, entry in manifest["files"].items():
        assert artifacts.sha256(out / name) == entry["sha256"]
    assert load_file(out / artifacts.DIFFUSERS_LORA)
    report = json.loads((out / artifacts.REPORT_JSON).read_text())
    assert report["erase_rate"] is not None  # the toy model's classifier judged the samples
    assert "erase" in result.stderr  # the progress bar


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"concept": "   "}, "the concept name is empty"),
        ({"concept": "bad\x07name"}, "control characters"),
        ({"model": "/nonexistent/model"}, "no such directory"),
        ({"model": "not-a-model"}, "not a hub id"),
        ({"config": '{"rank": 0}'}, "rank must be between 1 and 128"),
        ({"config": '{"rnak": 4}'}, "unknown config field(s): rnak"),
        ({"config": "missing.json"}, "neither a JSON object nor a file"),
        ({"images": "none"}, "no images given"),
        ({"images": "text"}, "notes.png: not a readable image"),
        ({"images": "empty"}, "empty.png: not a readable image"),
    ],
)
def test_bad_input_is_one_clear_line_and_no_output(tmp_path: Path, stars: Path, change, message):
    out = tmp_path / "out"
    images = [str(stars)]
    if change.get("images") == "none":
        empty_dir = tmp_path / "nothing"
        empty_dir.mkdir()
        images = [str(empty_dir)]
    elif change.get("images") == "text":
        (tmp_path / "notes.png").write_text("not an image")
        images = [str(stars / "star0.png"), str(tmp_path / "notes.png")]
    elif change.get("images") == "empty":
        (tmp_path / "empty.png").write_bytes(b"")
        images = [str(tmp_path / "empty.png")]
    extra = ["--config", change["config"]] if "config" in change else []
    result = _run(
        out,
        *extra,
        images=images,
        concept=change.get("concept", "star"),
        model=change.get("model", "toy-shapes"),
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_refuses_a_non_empty_output_directory(tmp_path: Path, stars: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _run(out, images=[str(stars)])
    assert result.returncode == 2
    assert "not empty" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_compile_on_without_a_cxx_compiler_is_refused_before_any_work(tmp_path: Path, stars: Path):
    out = tmp_path / "out"
    args = ["run", "--model", "toy-shapes", "--concept", "star", "--out", str(out), "--images", str(stars)]
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler")}
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args, "--compile", "on"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "unlearn: compile=on needs a C++ compiler for torch.compile (g++, or the one $CXX names)"
    )
    assert not out.exists()
