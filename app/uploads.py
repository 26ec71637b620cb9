"""Checking a submission before anything is stored: the concept, the images (by content), the params.

Every refusal is an AppError with a message a person can act on. Images are judged by their bytes,
never by file name or declared content type: the magic number picks the format, Pillow must agree,
the declared size is checked before any pixel is decoded (decompression bombs), then the whole image
is decoded once (truncated files).
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import socket
import unicodedata
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from app.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia
from app.settings import Settings
from worker.unlearning.config import UnlearnConfig
from worker.unlearning.errors import ConfigError

FORMATS = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg"), "WEBP": ("webp", "image/webp")}


@dataclass(frozen=True)
class Upload:
    data: bytes
    ext: str
    content_type: str
    sha256: str
    width: int
    height: int


def sniff(data: bytes) -> str | None:
    """PNG, JPEG or WEBP by magic number; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_image(name: str, data: bytes, settings: Settings) -> Upload:
    label = f"image {name!r}"
    if not data:
        raise InvalidInput(f"{label} is empty (0 bytes)")
    if len(data) > settings.max_image_bytes:
        raise PayloadTooLarge(f"{label} is {len(data)} bytes; the limit is {settings.max_image_bytes} bytes per image")
    fmt = sniff(data)
    if fmt is None:
        raise UnsupportedMedia(f"{label} is not a PNG, JPEG or WebP image (judged by its content, not its name)")
    with warnings.catch_warnings():
        # The pixel limit below is ours; Pillow's own warning is noise, its hard limit an error we map.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=[fmt])
        except Image.DecompressionBombError:
            raise PayloadTooLarge(
                f"{label} declares far more pixels than the limit of {settings.max_image_pixels}"
            ) from None
        except (OSError, SyntaxError, ValueError) as e:
            raise InvalidInput(f"{label} cannot be decoded as {fmt} ({type(e).__name__}); is it truncated?") from None
        width, height = img.size
        if width * height > settings.max_image_pixels:
            raise PayloadTooLarge(
                f"{label} declares {width}x{height} pixels; the limit is {settings.max_image_pixels} pixels"
            )
        if min(width, height) < settings.min_image_side:
            raise InvalidInput(f"{label} is {width}x{height}; each side must be at least {settings.min_image_side}")
        try:
            img.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise InvalidInput(f"{label} cannot be decoded as {fmt} ({type(e).__name__}); is it truncated?") from None
    ext, content_type = FORMATS[fmt]
    return Upload(data, ext, content_type, hashlib.sha256(data).hexdigest(), width, height)


def check_images(files: list[tuple[str, bytes]], settings: Settings) -> list[Upload]:
    if not files:
        raise InvalidInput("send at least one image in the 'images' field")
    if len(files) > settings.max_images:
        raise InvalidInput(f"{len(files)} images sent; at most {settings.max_images} are accepted")
    total = sum(len(d) for _, d in files)
    if total > settings.max_total_bytes:
        raise PayloadTooLarge(f"the images total {total} bytes; the limit is {settings.max_total_bytes} bytes")
    return [check_image(name, data, settings) for name, data in files]


def check_text(field: str, value: str, max_chars: int, *, required: bool) -> str:
    """Trimmed `value`: no control or format characters, at least one letter or digit, not too long."""
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        if required:
            raise InvalidInput(f"{field} must not be empty")
        return value
    if len(value) > max_chars:
        raise InvalidInput(f"{field} is {len(value)} characters; at most {max_chars} are accepted")
    bad = [c for c in value if unicodedata.category(c)[0] == "C"]
    if bad:
        raise InvalidInput(f"{field} contains control characters ({', '.join(repr(c) for c in bad[:3])})")
    if not any(c.isalnum() for c in value):
        raise InvalidInput(f"{field} must contain at least one letter or digit")
    return value


def check_params(raw: str | None) -> dict[str, Any]:
    """The config overrides, validated by the engine's own rules (worker.unlearning.config, no torch)."""
    if raw is None or not raw.strip():
        return {}
    try:
        overrides = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"params is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(overrides, dict):
        raise InvalidInput("params must be a JSON object of config field: value")
    try:
        UnlearnConfig.from_overrides(overrides)
    except ConfigError as exc:
        raise InvalidInput(f"params: {exc}") from None
    return overrides


def check_webhook_url(url: str | None, allow_private: bool) -> str | None:
    """An http(s) URL whose host resolves to public addresses only (unless `allow_private`): no SSRF."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput("webhook_url must be an http:// or https:// URL with a host")
    if len(url) > 2000:
        raise InvalidInput("webhook_url must be at most 2000 characters")
    if not allow_private:
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError, ValueError):
            raise InvalidInput(f"webhook_url: the host {parts.hostname!r} does not resolve") from None
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if not address.is_global:
                raise InvalidInput(
                    f"webhook_url: {parts.hostname} resolves to {address}, a private, loopback or reserved "
                    "address; webhooks go to public addresses only (UNLEARN_WEBHOOK_ALLOW_PRIVATE allows others)"
                )
    return url


def request_hash(fields: dict[str, Any], uploads: list[Upload]) -> str:
    """What makes two submissions 'the same' for an Idempotency-Key: every field and every image's bytes."""
    doc = json.dumps({**fields, "images": [u.sha256 for u in uploads]}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()
