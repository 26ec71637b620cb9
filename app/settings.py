"""Every setting of the service: environment variables with the prefix UNLEARN_, read by one class.

`get_settings()` reads them once, when first asked (never at import time). With nothing set the
result is the embedded default: SQLite and local files under UNLEARN_DATA_DIR, the in-process
worker, the shipped toy model, no API keys, 127.0.0.1:8000.
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """The service's settings. Each field's description is its documentation (README table)."""

    model_config = SettingsConfigDict(env_prefix="UNLEARN_", extra="ignore", frozen=True)

    # Where things live
    data_dir: Path = Field(Path(".unlearn"), description="state of the embedded default (SQLite file, artifacts)")
    database_url: str = Field("", description="SQLAlchemy URL of the job store; empty = SQLite in data_dir")
    broker_url: str = Field("", description="Celery broker (redis://...); empty = the in-process worker")
    queue_name: str = Field("unlearn", description="Celery queue the erasure tasks go to")
    storage: Literal["local", "s3"] = Field("local", description="where inputs and artifacts are kept")
    s3_bucket: str = Field("", description="bucket for inputs and artifacts (storage=s3)")
    s3_prefix: str = Field("", description="key prefix inside the bucket, e.g. 'unlearn/'")
    s3_endpoint_url: str = Field("", description="S3 API endpoint the service uses; empty = AWS")
    s3_public_endpoint_url: str = Field("", description="endpoint presigned download URLs are signed for")
    s3_region: str = Field("us-east-1", description="S3 region")
    s3_path_style: bool = Field(True, description="path-style addressing (MinIO and most S3-compatible stores)")
    s3_access_key_id: str = Field("", description="S3 access key; empty = boto3's usual credential chain")
    s3_secret_access_key: SecretStr = Field(SecretStr(""), description="S3 secret key")
    s3_timeout_s: float = Field(60.0, gt=0, le=600, description="connect and read timeout of one S3 request")
    s3_attempts: int = Field(5, ge=1, le=20, description="tries per S3 request (with backoff) before it fails")
    presign_ttl_s: int = Field(300, ge=10, le=86400, description="lifetime of presigned download URLs, seconds")
    # Serving
    host: str = Field("127.0.0.1", description="address `unlearn serve` binds")
    port: int = Field(8000, ge=1, le=65535, description="port `unlearn serve` binds")
    auth: Literal["none", "keys"] = Field("none", description="'keys': Bearer API keys on every route but health")
    rate_limit_per_minute: int = Field(600, ge=0, description="requests per minute per API key; 0 = unlimited")
    submit_limit_per_minute: int = Field(30, ge=0, description="POST /unlearn per minute per API key; 0 = unlimited")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS; empty = CORS off")
    # Models
    models: dict[str, str] = Field(
        default_factory=lambda: {"toy-shapes": "toy-shapes"},
        description="registry of base models, JSON name -> local path or hub id",
    )
    default_model: str = Field("toy-shapes", description="base model used when a request names none")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where the worker runs the erasure")
    compile: Literal["auto", "on", "off"] = Field(
        "auto",
        description="torch.compile erasures (faster after a model's first job): auto = on a CPU with g++, "
        "for configs of the default shapes; off on CUDA",
    )
    report_samples: int = Field(4, ge=0, le=64, description="samples per report prompt (0 = no report)")
    torch_threads: int = Field(
        0, ge=0, le=256, description="CPU threads of an erasure; 0 = all cores, but one left to the API when embedded"
    )
    # Input limits
    max_images: int = Field(20, ge=1, le=100, description="most images per request")
    max_image_bytes: int = Field(10 * MiB, ge=1024, description="largest image file, bytes")
    max_total_bytes: int = Field(50 * MiB, ge=1024, description="largest sum of image files, bytes")
    max_image_pixels: int = Field(4096 * 4096, ge=64, description="most pixels per image (decompression bombs)")
    min_image_side: int = Field(8, ge=1, description="smallest width or height of an image, pixels")
    max_concept_chars: int = Field(100, ge=1, le=1000, description="longest concept name")
    # Worker
    task_soft_time_limit_s: int = Field(1800, ge=10, description="an erasure is asked to stop after this")
    task_time_limit_s: int = Field(2100, ge=10, description="an erasure's process is killed after this")
    visibility_timeout_s: int = Field(3600, ge=10, description="Redis redelivers an unacknowledged task after this")
    max_attempts: int = Field(3, ge=1, le=20, description="starts per job before it ends failed (worker deaths)")
    # Webhooks
    webhook_secret: SecretStr = Field(SecretStr(""), description="whsec_... key that signs webhooks")
    webhook_timeout_s: float = Field(10.0, gt=0, le=60, description="timeout of one webhook delivery")
    webhook_attempts: int = Field(6, ge=1, le=20, description="deliveries tried before giving up")
    webhook_backoff_s: float = Field(2.0, ge=0, le=600, description="first retry delay; doubles each time")
    webhook_allow_private: bool = Field(False, description="allow webhooks to loopback/private addresses")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.task_soft_time_limit_s >= self.task_time_limit_s:
            raise ValueError("task_soft_time_limit_s must be below task_time_limit_s")
        if self.visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError("visibility_timeout_s must exceed task_time_limit_s, or long tasks run twice")
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("storage=s3 needs UNLEARN_S3_BUCKET")
        if self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not in models ({', '.join(self.models)})")
        secret = self.webhook_secret.get_secret_value()
        if secret and not secret.startswith("whsec_"):
            raise ValueError("webhook_secret must look like whsec_<base64>")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'unlearn.db'}"

    @property
    def local_dir(self) -> Path:
        return self.data_dir / "files"

    def check_bind(self, host: str) -> None:
        """Without API keys the service may listen on loopback only."""
        if self.auth == "none" and not is_loopback(host):
            raise ValueError(
                f"refusing to listen on {host} with UNLEARN_AUTH=none: anyone could submit jobs. "
                "Create keys with `unlearn keys create --tenant NAME` and set UNLEARN_AUTH=keys, or bind 127.0.0.1"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    return Settings()


def markdown_table() -> str:
    """The README's settings table, generated from the class (a test keeps the README in step)."""
    rows = ["| variable | default | what it sets |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        if isinstance(default, SecretStr):
            default = ""
        shown = json.dumps(default) if isinstance(default, dict | list) else str(default)
        rows.append(f"| `UNLEARN_{name.upper()}` | `{shown}` | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
