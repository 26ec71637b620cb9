"""The real services the tests talk to: PostgreSQL, Redis and an S3 API (moto's server) on loopback.

Each fixture skips, saying why, when its service is not reachable, unless UNLEARN_TEST_REQUIRE_SERVICES
is set (CI sets it: there a missing service is a failure, not a skip).
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN = os.environ.get("UNLEARN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("UNLEARN_TEST_REDIS", "redis://127.0.0.1:6379")


def _unavailable(what: str) -> None:
    if os.environ.get("UNLEARN_TEST_REQUIRE_SERVICES"):
        pytest.fail(f"{what} (CI requires it; .ci/run starts it)")
    pytest.skip(f"{what}; start it as .ci/run does")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        _unavailable(f"PostgreSQL is not reachable at {PG_ADMIN} ({type(exc).__name__})")
    finally:
        engine.dispose()
    return PG_ADMIN


def create_database(server: str) -> str:
    """A fresh, migrated PostgreSQL database on `server`; its URL."""
    from sqlalchemy import create_engine, text

    from app import db

    name = f"unlearn_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.rsplit("/", 1)[0] + f"/{name}"
    db.migrate(url)
    return url


def drop_database(server: str, url: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    url = create_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from app import db

    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    db.migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="session")
def redis_server() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_timeout=2).ping()
    except Exception as exc:
        _unavailable(f"Redis is not reachable at {REDIS} ({type(exc).__name__})")
    return REDIS


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A Redis database of its own (numbers 1-15 rotate), flushed before and after."""
    import redis

    url = f"{redis_server}/{1 + uuid.uuid4().int % 15}"
    client = redis.Redis.from_url(url, socket_timeout=2)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def make_bucket(endpoint: str) -> dict[str, str]:
    """A new bucket on the S3 server at `endpoint`; the UNLEARN_ settings that point at it."""
    import boto3

    bucket = f"unlearn-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    ).create_bucket(Bucket=bucket)
    return {
        "UNLEARN_STORAGE": "s3",
        "UNLEARN_S3_BUCKET": bucket,
        "UNLEARN_S3_ENDPOINT_URL": endpoint,
        "UNLEARN_S3_ACCESS_KEY_ID": "test",
        "UNLEARN_S3_SECRET_ACCESS_KEY": "test",
    }


@pytest.fixture
def s3_env(moto_endpoint: str) -> dict[str, str]:
    return make_bucket(moto_endpoint)


def settings_from(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Settings built from UNLEARN_ variables (as the processes under test read them)."""
    from app.settings import Settings

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return Settings()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class TcpProxy:
    """A TCP proxy on loopback: `stop()` cuts every connection and refuses new ones, like a server gone."""

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None

    def start(self) -> None:
        import threading

        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._server is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone leaves the port listening.
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                except OSError:
                    pass
            self._conns.clear()
