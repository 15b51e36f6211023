"""Adaptive selection across crawls and coordinator processes: auto_save in one, adaptive in another."""

import json
import subprocess
import sys

import pytest
import redis
from aiohttp import web

from shoal.common import keys
from shoal.common.sessions import check_request_kwargs
from shoal.demo.site import serve_app
from shoal.fetchers import AsyncDynamicSession, FetcherSession

SPIDER = """
from shoal.fetchers import FetcherSession
from shoal.spiders import Spider


class Prices(Spider):
    name = "prices"
    logging_level = 30

    def __init__(self, base, mode, **kwargs):
        self.start_urls = [f"{base}/product"]
        self.mode = mode
        super().__init__(**kwargs)

    def configure_sessions(self, manager):
        manager.add("default", FetcherSession(selector_config={"adaptive": True}))

    async def parse(self, response):
        if self.mode == "save":
            found = response.css("#price", auto_save=True)
        else:
            found = response.css("#price", adaptive=True)
        yield {"price": found.first.text if found else None}
"""

BEFORE = '<div class="product"><h1>Widget</h1><p id="price" class="price">9.50</p><p class="stock">In stock</p></div>'
# The redesign: no id any more, other classes, one more wrapper; the same element for a person.
AFTER = (
    '<main><div class="product-card"><h1>Widget</h1><p class="price-now" data-currency="usd">9.50</p>'
    '<p class="stock">In stock</p></div></main>'
)


@pytest.fixture
def shop_page():
    """A product page whose markup the test changes: ``markup[0]`` is served."""
    markup = [BEFORE]

    async def product(request):
        return web.Response(text=f"<html><body>{markup[0]}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/product", product)
    url, stop = serve_app(app)
    yield url, markup
    stop()


def crawl_in_its_own_process(spider_file, redis_url: str, base: str, mode: str, output) -> list[dict]:
    """``shoal run``: a coordinator (and a worker) in processes of their own, on the shared Redis."""
    command = [sys.executable, "-m", "shoal", "run", str(spider_file), "--redis", redis_url, "-o", str(output)]
    command += ["-a", f"base={base}", "-a", f"mode={mode}"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    return [json.loads(line) for line in output.read_text().splitlines()]


def test_an_element_auto_saved_by_one_crawl_is_found_adaptively_by_another_after_the_markup_changed(
    shop_page, redis_url, tmp_path
):
    base, markup = shop_page
    spider_file = tmp_path / "prices.py"
    spider_file.write_text(SPIDER)

    saved = crawl_in_its_own_process(spider_file, redis_url, base, "save", tmp_path / "first.jsonl")
    assert saved == [{"price": "9.50"}]
    store = redis.Redis.from_url(redis_url)
    key = keys.adaptive("prices", "default")  # Scrapling's scope for a host without a registered domain
    assert json.loads(store.hget(key, "#price"))["attributes"] == {"id": "price", "class": "price"}

    markup[0] = AFTER
    found = crawl_in_its_own_process(spider_file, redis_url, base, "find", tmp_path / "second.jsonl")
    assert found == [{"price": "9.50"}]

    store.delete(key)  # nothing saved any more: the element is not found (no local file answered before)
    lost = crawl_in_its_own_process(spider_file, redis_url, base, "find", tmp_path / "third.jsonl")
    assert lost == [{"price": None}]


def test_selector_config_takes_scraplings_parser_arguments_and_refuses_a_storage_of_its_own():
    FetcherSession(selector_config={"adaptive": True, "adaptive_domain": "shop.test", "keep_comments": False})
    with pytest.raises(
        TypeError, match=r"'selector_config' sets 'storage': shoal keeps adaptive selection data in Redis"
    ):
        FetcherSession(selector_config={"adaptive": True, "storage": object})
    with pytest.raises(TypeError, match=r"'selector_config' has unknown key 'adaptiv' \(known: adaptive, "):
        AsyncDynamicSession(selector_config={"adaptiv": True})
    with pytest.raises(TypeError, match=r"argument 'selector_config' of Request to sid 'a' \(a http session\) key"):
        check_request_kwargs("http", {"selector_config": {"adaptive": "yes"}}, where="Request to sid 'a'")
