"""The service's errors: one small hierarchy; app/api/problems.py renders each as RFC 9457 problem+json.

Nothing outside app/api raises HTTPException: modules raise these, the handler picks the status.
"""

from __future__ import annotations


class AppError(Exception):
    """Base of every error the service raises on purpose. `code` is stable and machine-readable."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(AppError, ValueError):
    status, code, title = 422, "invalid_input", "Invalid input"


class PayloadTooLarge(AppError, ValueError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMedia(AppError, ValueError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class NotFound(AppError, LookupError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class Unavailable(AppError):
    status, code, title = 503, "unavailable", "Service unavailable"


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"
