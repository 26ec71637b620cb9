"""Settings: the embedded default with nothing set; inconsistent values refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_nothing_set_is_the_embedded_default(monkeypatch):
    for var in [v for v in __import__("os").environ if v.startswith("UNLEARN_")]:
        monkeypatch.delenv(var)
    s = Settings()
    assert s.db_url == f"sqlite:///{Path('.unlearn') / 'unlearn.db'}"
    assert (s.broker_url, s.storage, s.auth, s.host, s.port) == ("", "local", "none", "127.0.0.1", 8000)
    assert s.models == {"toy-shapes": "toy-shapes"}


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("UNLEARN_MODELS", '{"sd21": "/models/sd21", "toy-shapes": "toy-shapes"}')
    monkeypatch.setenv("UNLEARN_MAX_IMAGES", "5")
    s = Settings()
    assert s.models["sd21"] == "/models/sd21" and s.max_images == 5


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"task_time_limit_s": 100, "task_soft_time_limit_s": 200, "visibility_timeout_s": 300}, "soft"),
        ({"task_time_limit_s": 4000, "visibility_timeout_s": 3600}, "visibility_timeout_s must exceed"),
        ({"storage": "s3"}, "UNLEARN_S3_BUCKET"),
        ({"default_model": "sd21"}, "not in models"),
        ({"webhook_secret": "hunter2"}, "whsec_"),
    ],
)
def test_inconsistent_settings_are_refused(values, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_without_keys_only_loopback_may_be_bound():
    s = Settings()
    for host in ("127.0.0.1", "::1", "localhost"):
        s.check_bind(host)
    with pytest.raises(ValueError, match="UNLEARN_AUTH=keys"):
        s.check_bind("0.0.0.0")
    Settings(auth="keys").check_bind("0.0.0.0")


def test_the_readme_lists_every_setting_as_the_class_defines_it():
    from app.settings import markdown_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table() in readme, "regenerate the README's table with: python -m app.settings"
