"""The unlearning core's errors: one small hierarchy, each also a builtin the caller may expect."""

from __future__ import annotations


class UnlearnError(Exception):
    """Base of every error the core raises on purpose. `code` is stable and machine-readable."""

    code = "unlearn_error"


class ConfigError(UnlearnError, ValueError):
    """A configuration value is out of range, of the wrong type, or unknown."""

    code = "invalid_config"


class InputError(UnlearnError, ValueError):
    """The concept or its images cannot be used (empty name, no images, unreadable files)."""

    code = "invalid_input"


class ModelError(UnlearnError, ValueError):
    """The base model cannot be found or is not a supported Stable Diffusion pipeline."""

    code = "invalid_model"


class Canceled(UnlearnError):
    """The caller asked to stop; raised at the next cancellation check."""

    code = "canceled"
