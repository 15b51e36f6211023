"""ProxyRotator in real crawls: two worker processes share one rotation through real forwarding proxies on
127.0.0.1, a request's own proxy= wins, and the proxy of each page is in its meta and in the stats."""

import base64

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from shoal.demo.site import serve_app
from shoal.fetchers import AsyncDynamicSession, FetcherSession, ProxyRotator
from shoal.spiders import Request, Response, Spider
from shoal.workers.proxies import ProxyRotation

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "content-length",
}


class ForwardProxy:
    """An HTTP proxy on 127.0.0.1 for http:// URLs: forwards each request and records what it carried."""

    def __init__(self) -> None:
        self.carried: list[str] = []
        self.auth: list[str] = []
        app = web.Application()
        app.cleanup_ctx.append(self._client)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self.url, self.stop = serve_app(app)

    async def _client(self, app: web.Application):
        self.client = aiohttp.ClientSession(auto_decompress=False)
        yield
        await self.client.close()

    async def _forward(self, request: web.Request) -> web.Response:
        self.carried.append(str(request.url))
        if "Proxy-Authorization" in request.headers:
            self.auth.append(base64.b64decode(request.headers["Proxy-Authorization"].split()[1]).decode())
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
        async with self.client.request(
            request.method, str(request.url), headers=headers, data=await request.read(), allow_redirects=False
        ) as upstream:
            body = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=upstream.status, body=body, headers=kept)


@pytest.fixture(scope="module")
def proxies():
    started = [ForwardProxy() for _ in range(3)]
    yield started
    for proxy in started:
        proxy.stop()


class RotatingSpider(Spider):
    """``pages`` slow pages through a ProxyRotator of two proxies (the second with credentials), and one
    page pinned to a third proxy by the request's own proxy=."""

    name = "rotating"
    concurrent_requests = 8
    logging_level = 30

    def __init__(self, base: str, rotated: list[str], pinned: str, strategy: str = "", pages: int = 12):
        self.base, self.rotated, self.pinned, self.pages, self.strategy = base, rotated, pinned, pages, strategy
        super().__init__()

    def configure_sessions(self, manager):
        strategy = getattr(self, self.strategy) if self.strategy else None
        manager.add("default", FetcherSession(proxy_rotator=ProxyRotator(list(self.rotated), strategy=strategy)))

    async def start_requests(self):
        for n in range(self.pages):
            yield Request(f"{self.base}/slow?seconds=0.1&n={n}")
        yield Request(f"{self.base}/slow?seconds=0.1&n=pinned", proxy=self.pinned)

    def three_then_one(self, proxies, index):
        """A custom strategy: the first proxy three times, then the second once."""
        return proxies[0 if index % 4 < 3 else 1], index + 1

    async def parse(self, response: Response):
        yield {"url": response.url, "proxy": response.meta.get("proxy")}


def with_credentials(url: str) -> str:
    return url.replace("http://", "http://user:secret@")


def crawl(shop, redis_url, proxies, strategy=""):
    first, second, third = proxies
    for proxy in proxies:
        proxy.carried.clear()
        proxy.auth.clear()
    rotated = [first.url, with_credentials(second.url)]
    spider = RotatingSpider(shop.url, rotated, third.url, strategy)
    return spider.start(redis_url=redis_url, workers={"default": 2}, capacity=2), rotated


def assert_each_page_went_through_the_proxy_in_its_meta(result, proxies, rotated):
    by_proxy = dict(zip([*rotated, proxies[2].url], proxies, strict=True))
    for item in result.items:
        assert item["url"] in by_proxy[item["proxy"]].carried
    assert sum(len(proxy.carried) for proxy in proxies) == len(result.items) == 13
    assert len(result.stats.workers_requests_count) == 2  # both workers fetched


def test_cyclic_rotation_takes_the_proxies_in_turn_across_two_workers(shop, redis_url, proxies):
    result, rotated = crawl(shop, redis_url, proxies)
    assert_each_page_went_through_the_proxy_in_its_meta(result, proxies, rotated)
    assert [len(proxy.carried) for proxy in proxies] == [6, 6, 1]
    pinned = [item["url"] for item in result.items if item["proxy"] == proxies[2].url]
    assert pinned == [f"{shop.url}/slow?seconds=0.1&n=pinned"]  # the request's own proxy, not a turn of the rotation
    assert set(proxies[1].auth) == {"user:secret"}
    assert result.stats.proxies == sorted(proxy.url for proxy in proxies)  # no credentials in the stats
    assert result.stats.proxies_requests_count == {proxies[0].url: 6, proxies[1].url: 6, proxies[2].url: 1}


def test_a_custom_strategy_given_as_a_spider_method_runs_in_the_workers_on_one_shared_index(shop, redis_url, proxies):
    result, rotated = crawl(shop, redis_url, proxies, strategy="three_then_one")
    assert_each_page_went_through_the_proxy_in_its_meta(result, proxies, rotated)
    # 12 turns of one index that both workers share: 9 on the first proxy, 3 on the second
    assert [len(proxy.carried) for proxy in proxies] == [9, 3, 1]


class BrowserRotatingSpider(Spider):
    name = "browser-rotating"
    logging_level = 30

    def __init__(self, base: str, rotated: list[str]):
        self.start_urls = [f"{base}/product/{n}" for n in range(1, 5)]
        self.rotated = rotated
        super().__init__()

    def configure_sessions(self, manager):
        # Chromium sends nothing for 127.0.0.1 through a proxy unless loopback is taken off its bypass list
        session = AsyncDynamicSession(
            proxy_rotator=ProxyRotator(list(self.rotated)), extra_flags=["--proxy-bypass-list=<-loopback>"]
        )
        manager.add("browser", session)

    async def parse(self, response: Response):
        yield {"url": response.url, "proxy": response.meta.get("proxy")}


def test_a_browser_session_rotates_its_proxies_with_a_context_per_proxy(shop, redis_url, proxies):
    first, second, _ = proxies
    for proxy in proxies:
        proxy.carried.clear()
    result = BrowserRotatingSpider(shop.url, [first.url, second.url]).start(redis_url=redis_url)
    assert sorted(item["proxy"] for item in result.items) == sorted([first.url, second.url] * 2)
    for item in result.items:
        proxy = first if item["proxy"] == first.url else second
        assert item["url"] in proxy.carried
    assert result.stats.proxies_requests_count == {first.url: 2, second.url: 2}


async def test_a_strategy_that_returns_no_proxy_is_an_error_naming_it(redis_url):
    redis = Redis.from_url(redis_url)

    def broken(proxies, index):
        return "http://p1"

    rotation = ProxyRotation(
        redis, "c1", "default", {"proxies": ["http://p1"], "strategy": "broken"}, {"broken": broken}.get
    )
    try:
        with pytest.raises(TypeError, match=r"ProxyRotator strategy 'broken' must return \(proxy, next_index\)"):
            await rotation.next()
    finally:
        await redis.aclose()
