"""Inputs and artifacts: a local directory or any S3 API (AWS, MinIO, moto), behind one interface.

Keys are built from job ids only (`jobs/{id}/inputs/00.png`), never from user text.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.settings import Settings

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str = ...) -> Stored: ...
    def put_file(self, key: str, path: Path, content_type: str = ...) -> Stored: ...
    def get(self, key: str) -> bytes: ...
    def open(self, key: str) -> Iterator[bytes]: ...
    def exists(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def presign(self, key: str, filename: str) -> str | None: ...
    def check(self) -> None: ...


def input_key(job_id: str, index: int, ext: str) -> str:
    return f"jobs/{job_id}/inputs/{index:02d}.{ext}"


def artifact_key(job_id: str, attempt: int, name: str) -> str:
    # One prefix per attempt: a run that died half-way never mixes files with the run that finished.
    return f"jobs/{job_id}/artifacts/{attempt}/{name}"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class LocalStorage:
    """Files under a directory; writes land in a temporary file first, then rename (never half a file)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"key {key!r} leaves the storage directory")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> Stored:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return Stored(key, len(data), hashlib.sha256(data).hexdigest())

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> Stored:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        os.close(fd)
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)
        return Stored(key, dest.stat().st_size, _sha256_file(dest))

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def open(self, key: str) -> Iterator[bytes]:
        with self._path(key).open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def presign(self, key: str, filename: str) -> str | None:
        return None

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / ".readyz"
        probe.write_bytes(b"ok")
        probe.unlink()


class S3Storage:
    """boto3 against any S3 API, with the settings S3-compatible stores need (see FACTS.md)."""

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.ttl = settings.presign_ttl_s
        self.client = _client(settings, settings.s3_endpoint_url)
        # Presigned URLs sign the Host header: sign with a client that names the public endpoint.
        public = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        self.public_client = _client(settings, public) if public != settings.s3_endpoint_url else self.client

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> Stored:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=content_type)
        return Stored(key, len(data), hashlib.sha256(data).hexdigest())

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> Stored:
        self.client.upload_file(str(path), self.bucket, self.prefix + key, ExtraArgs={"ContentType": content_type})
        return Stored(key, path.stat().st_size, _sha256_file(path))

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read())

    def open(self, key: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        yield from body.iter_chunks(CHUNK)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def delete_prefix(self, prefix: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def presign(self, key: str, filename: str) -> str | None:
        params = {
            "Bucket": self.bucket,
            "Key": self.prefix + key,
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        }
        return str(self.public_client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.ttl))

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)


def _client(settings: Settings, endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if settings.s3_path_style else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": settings.s3_attempts, "mode": "standard"},
        connect_timeout=min(settings.s3_timeout_s, 10),
        read_timeout=settings.s3_timeout_s,
    )
    secret = settings.s3_secret_access_key.get_secret_value()
    return boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id or None,
        aws_secret_access_key=secret or None,
        config=config,
    )


def make_storage(settings: Settings) -> Storage:
    if settings.storage == "s3":
        return S3Storage(settings)
    return LocalStorage(settings.local_dir)
