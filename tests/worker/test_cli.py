from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from worker.toy.paths import toy_model_dir


def _unlearn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_toy_sample_writes_the_grid(tmp_path: Path):
    out = tmp_path / "grid.png"
    result = _unlearn("toy", "sample", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as img:
        assert img.size == (8 * 96, 4 * 96)  # 4 colours x 2 samples, 4 shapes, 32 px tiles x3


def test_toy_sample_on_a_missing_model_says_so(tmp_path: Path):
    result = _unlearn("toy", "sample", "--model", str(tmp_path), "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "model_index.json missing" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_unknown_command_is_a_usage_error():
    result = _unlearn("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_shipped_model_is_found_from_the_checkout():
    assert (toy_model_dir() / "model_index.json").is_file()


def test_serve_without_keys_refuses_a_public_address(tmp_path: Path):
    result = _unlearn("serve", "--host", "0.0.0.0", "--port", "8999")
    assert result.returncode == 2
    assert "UNLEARN_AUTH=keys" in result.stderr and "Traceback" not in result.stderr


def test_bad_settings_are_one_clear_line(monkeypatch):
    monkeypatch.setenv("UNLEARN_STORAGE", "s3")
    result = _unlearn("migrate")
    assert result.returncode == 2
    assert "UNLEARN_S3_BUCKET" in result.stderr and "Traceback" not in result.stderr


def test_worker_without_a_broker_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("UNLEARN_BROKER_URL", raising=False)
    result = _unlearn("worker")
    assert result.returncode == 2 and "UNLEARN_BROKER_URL" in result.stderr


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_asked_to_compile_without_a_compiler_a_worker_refuses_to_start(monkeypatch, tmp_path: Path, command):
    if command == "worker":
        monkeypatch.setenv("UNLEARN_BROKER_URL", "redis://127.0.0.1:6379/0")
    else:  # the embedded worker of `unlearn serve` with no broker
        monkeypatch.delenv("UNLEARN_BROKER_URL", raising=False)
        monkeypatch.setenv("UNLEARN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("UNLEARN_COMPILE", "on")
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    result = _unlearn(command)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        == "unlearn: compile=on needs a C++ compiler for torch.compile (g++, or the one $CXX names)"
    )


def test_keys_create_prints_a_key_that_authenticates(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("UNLEARN_DATA_DIR", str(tmp_path))
    result = _unlearn("keys", "create", "--tenant", "acme")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("unl_") and "shown only this once" in result.stderr
    from app import db, keys

    engine = db.connect(f"sqlite:///{tmp_path / 'unlearn.db'}")
    assert keys.tenant_for(db.sessions(engine), key) == "acme"
    engine.dispose()
    bad = _unlearn("keys", "create", "--tenant", "../etc")
    assert bad.returncode == 2 and "tenant must be" in bad.stderr


def test_the_celery_parent_process_does_not_load_torch(monkeypatch):
    # Prefork children must not inherit an initialised CUDA context: torch loads in the task only.
    monkeypatch.setenv("UNLEARN_BROKER_URL", "redis://127.0.0.1:6379/0")
    code = "import sys, worker.tasks; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
