"""An API in-process (TestClient) over a real job store and real storage; the queue is the embedded one."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.api.main import create_app
from app.queue import LocalQueue
from app.services import Services, build_services
from app.settings import Settings


def png(size: int = 32, color: str = "red", fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format=fmt)
    return buf.getvalue()


def form(concept: str = "star", n: int = 2, **fields: str) -> dict[str, Any]:
    """Keyword arguments for client.post: the concept, `n` small PNGs and any extra fields."""
    files = [("images", (f"img{i}.png", png(color=("red", "blue", "green")[i % 3]), "image/png")) for i in range(n)]
    return {"data": {"concept": concept, **fields}, "files": files}


class Api:
    def __init__(self, client: TestClient, services: Services) -> None:
        self.client = client
        self.services = services
        self.enqueued: list[str] = []
        self.webhooks: list[str] = []
        if isinstance(services.queue, LocalQueue):
            services.queue.on_enqueue.append(self.enqueued.append)
            services.queue.on_webhook.append(self.webhooks.append)

    def submit(self, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.post("/unlearn", headers=headers or {}, **form(**kw))


@pytest.fixture
def make_api(tmp_path: Path, sqlite_url: str) -> Iterator[Callable[..., Api]]:
    """make_api(**settings) -> an Api on SQLite and local storage unless the settings say otherwise."""
    made: list[tuple[TestClient, Services]] = []

    def make(settings: Settings | None = None, **overrides: Any) -> Api:
        settings = settings or Settings(data_dir=tmp_path / "data", database_url=sqlite_url, **overrides)
        services = build_services(settings, None if settings.broker_url else LocalQueue())
        client = TestClient(create_app(settings, services=services))
        client.__enter__()
        made.append((client, services))
        return Api(client, services)

    yield make
    for client, services in made:
        client.__exit__(None, None, None)
        services.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()
