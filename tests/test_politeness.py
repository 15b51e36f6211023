"""Politeness held centrally: robots.txt and per-domain delays hold however many workers fetch.

Each site serves one app on several ports of 127.0.0.1, so each port is a domain of its own, and
records when each request arrived: the gaps the server saw are what a website would see.
"""

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from redis.asyncio import Redis

from shoal.common import keys
from shoal.coordinator.engine import CrawlEngine
from shoal.coordinator.throttle import AutoThrottle, retry_after
from shoal.fetchers import AsyncDynamicSession, FetcherSession
from shoal.local.supervisor import WorkerProcesses
from shoal.spiders import Response, Spider
from shoal.spiders.loader import crawl_spec, spider_source
from shoal.store.specs import shared_secret, store_spec
from shoal.workers.chromium import find_chromium

#: Delays are kept on Redis's clock (whole ms) and arrivals on the site's: how far apart the two may read.
CLOCK_SLACK = 0.05

# A loaded machine only makes requests later, so the timing checks below are bounds that lateness cannot
# break: a request is dispatched at least its delay after the one before (and after what caused it: a
# robots.txt or a refused response), and a worker sends it at, or after, its dispatch. Between two
# requests that do not wait on each other the gap the site sees can still be shorter than the delay (a
# worker may send one late and the next on time), so those are checked over the whole crawl.


@dataclass
class Domain:
    """What one port serves: ``/robots.txt``, ``/page/N`` (page 0 links to every page and private page,
    the others back to page 0 and private page 1) and ``/private/N``."""

    robots: str | int = 404  # the robots.txt text, or the status it answers with
    robots_wait: float = 0.0
    drop_robots: bool = False  # close the connection instead of answering robots.txt
    pages: int = 5
    private: int = 0
    latency: float = 0.0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Site:
    domains: list[Domain]
    urls: list[str] = field(default_factory=list)
    hits: list[tuple[float, int, str]] = field(default_factory=list)  # (arrival, domain index, path)

    def paths(self, domain: int = 0) -> list[str]:
        return [path for _, index, path in self.hits if index == domain]

    def arrivals(self, domain: int = 0, prefix: str = "/page/") -> list[float]:
        return sorted(at for at, index, path in self.hits if index == domain and path.startswith(prefix))


def _app(site: Site, ports: list[int]) -> web.Application:
    def domain_of(request: web.Request) -> int:
        return ports.index(request.transport.get_extra_info("sockname")[1])

    @web.middleware
    async def record(request: web.Request, handler):
        site.hits.append((time.monotonic(), domain_of(request), request.path))
        return await handler(request)

    async def robots(request: web.Request) -> web.StreamResponse:
        domain = site.domains[domain_of(request)]
        await asyncio.sleep(domain.robots_wait)
        if domain.drop_robots:
            request.transport.close()
            return web.Response()
        if isinstance(domain.robots, int):
            return web.Response(text="no robots here", status=domain.robots)
        return web.Response(text=domain.robots, content_type="text/plain")

    async def page(request: web.Request) -> web.Response:
        domain = site.domains[domain_of(request)]
        await asyncio.sleep(domain.latency)
        if request.match_info["n"] == "0":
            links = [f"/page/{n}" for n in range(1, domain.pages)]
            links += [f"/private/{n}" for n in range(1, domain.private + 1)]
        else:
            links = ["/page/0", "/private/1"] if domain.private else ["/page/0"]
        body = "".join(f'<a href="{link}">{link}</a>' for link in links)
        return web.Response(text=body, status=domain.status, headers=domain.headers, content_type="text/html")

    async def private(request: web.Request) -> web.Response:
        return web.Response(text="<h1>secret</h1>", content_type="text/html")

    app = web.Application(middlewares=[record])
    app.add_routes(
        [web.get("/robots.txt", robots), web.get("/page/{n:\\d+}", page), web.get("/private/{n:\\d+}", private)]
    )
    return app


@contextlib.contextmanager
def serve(*domains: Domain) -> Iterator[Site]:
    """Serve ``domains`` on ports of 127.0.0.1 from a background thread."""
    site, loop, ready = Site(list(domains)), asyncio.new_event_loop(), threading.Event()
    ports: list[int] = []

    async def start() -> web.AppRunner:
        runner = web.AppRunner(_app(site, ports), access_log=None)
        await runner.setup()
        for _ in domains:
            tcp = web.TCPSite(runner, "127.0.0.1", 0)
            await tcp.start()
            ports.append(tcp._server.sockets[0].getsockname()[1])
        site.urls = [f"http://127.0.0.1:{port}" for port in ports]
        return runner

    def run() -> None:
        runner = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield site
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


class PageSpider(Spider):
    """Starts at each URL's ``/page/0`` and follows every link."""

    name = "polite"
    logging_level = 40
    concurrent_requests = 8

    def configure_sessions(self, manager):
        manager.add("default", FetcherSession(retries=1))

    def __init__(self, urls: list[str], **attributes):
        self.start_urls = [f"{url}/page/0" for url in urls]
        for name, value in attributes.items():
            setattr(self, name, value)
        super().__init__()

    async def parse(self, response: Response):
        for link in response.css("a::attr(href)").getall():
            yield response.follow(link)
        yield {"url": response.url}


def gaps(arrivals: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(arrivals)]


# -- robots.txt ---------------------------------------------------------------------------------


def test_robots_disallowed_pages_are_never_fetched_and_each_is_counted_once(redis_url):
    robots = "User-agent: *\nDisallow: /private/\n"
    with serve(Domain(robots=robots, pages=6, private=3)) as site:
        result = PageSpider(site.urls, robots_txt_obey=True).start(redis_url=redis_url)
    assert not [path for path in site.paths() if path.startswith("/private/")]
    assert sorted(site.paths()) == sorted(["/robots.txt"] + [f"/page/{n}" for n in range(6)])
    assert result.stats.robots_disallowed_count == 3  # /private/1 is linked from every page: counted once
    assert result.stats.robots_txt_count == 1
    assert result.stats.requests_count == 6  # the robots.txt fetch is not a page


def test_a_robots_txt_that_is_missing_fails_or_is_unreachable_allows_everything(redis_url):
    domains = Domain(robots=404, private=1), Domain(robots=503, private=1), Domain(drop_robots=True, private=1)
    with serve(*domains) as site:
        result = PageSpider(site.urls, robots_txt_obey=True).start(redis_url=redis_url)
    for domain in range(3):
        assert sorted(site.paths(domain)) == sorted(["/private/1", "/robots.txt"] + [f"/page/{n}" for n in range(5)])
    assert result.stats.robots_disallowed_count == 0
    assert result.stats.robots_txt_count == 3


def test_robots_txt_is_not_fetched_unless_the_spider_obeys_it(redis_url):
    with serve(Domain(robots="User-agent: *\nDisallow: /\n", private=1)) as site:
        result = PageSpider(site.urls).start(redis_url=redis_url)
    assert "/robots.txt" not in site.paths()
    assert result.stats.robots_txt_count == 0
    assert len(result.items) == 6


@pytest.mark.parametrize("workers", [1, 3])
def test_robots_txt_is_fetched_once_and_its_crawl_delay_or_request_rate_spaces_requests_however_many_workers(
    redis_url, workers
):
    crawl_delay = Domain(robots="User-agent: *\nCrawl-delay: 0.3\n", pages=10)
    request_rate = Domain(robots="User-agent: *\nRequest-rate: 10/3s\n", pages=6)  # 0.3 s a request
    with serve(crawl_delay, request_rate) as site:
        result = PageSpider(site.urls, robots_txt_obey=True).start(redis_url=redis_url, workers={"default": workers})
    for domain, pages in ((0, 10), (1, 6)):
        arrivals = site.arrivals(domain)
        assert len(arrivals) == pages
        assert site.paths(domain).count("/robots.txt") == 1
        [robots_txt] = site.arrivals(domain, "/robots.txt")  # the first page is dispatched after it came
        assert arrivals[-1] - robots_txt >= (pages - 1) * 0.3 - CLOCK_SLACK, gaps(arrivals)
    assert result.stats.robots_txt_count == 2
    assert (len(result.stats.workers_requests_count) > 1) == (workers > 1)  # the workers shared the pages


class StartSpider(Spider):
    """Fetches exactly its start URLs with robots.txt obeyed."""

    name = "start"
    logging_level = 40
    robots_txt_obey = True

    def __init__(self, urls: list[str]):
        self.start_urls = urls
        super().__init__()

    async def parse(self, response: Response):
        yield {"url": response.url}


async def _count(awaitable, expected: int) -> bool:
    return await awaitable == expected


async def _until(check, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_requests_held_for_robots_txt_survive_a_coordinator_restart(redis_url):
    robots = "User-agent: *\nDisallow: /private/\n"
    with serve(Domain(robots=robots, robots_wait=1.0, pages=4, private=2)) as site:
        urls = [f"{site.urls[0]}/page/{n}" for n in range(4)] + [f"{site.urls[0]}/private/{n}" for n in (1, 2)]
        first = StartSpider(urls)
        redis = Redis.from_url(redis_url)
        crawl = "held-robots"
        await store_spec(redis, crawl_spec(crawl, first, *spider_source(StartSpider), {}), shared_secret())
        workers = WorkerProcesses(first, redis_url, {}, None)
        await workers.start()
        try:
            await workers.wait_ready(redis)
            coordinator = asyncio.create_task(CrawlEngine(redis, first, crawl).run())
            held = keys.robots_held(crawl, site.urls[0].removeprefix("http://"))
            await _until(lambda: _count(redis.zcard(held), 6))
            coordinator.cancel()  # the coordinator goes away while robots.txt is being fetched
            with contextlib.suppress(asyncio.CancelledError):
                await coordinator
            assert await redis.zcard(held) == 6
            stats = await workers.guard(CrawlEngine(redis, StartSpider(urls), crawl).run())
        finally:
            await workers.stop()
            await redis.aclose()
    assert sorted(site.paths()) == sorted(["/robots.txt"] + [f"/page/{n}" for n in range(4)])
    assert stats.robots_disallowed_count == 2
    assert stats.requests_count == 4


class BrowserSpider(PageSpider):
    name = "polite-browser"

    def configure_sessions(self, manager):
        manager.add("browser", AsyncDynamicSession(headless=True, disable_resources=True))


def test_a_spider_with_only_browser_sessions_obeys_robots_txt(redis_url):
    try:
        find_chromium()
    except FileNotFoundError as e:
        pytest.skip(f"no Chromium: {e}")
    with serve(Domain(robots="User-agent: *\nDisallow: /private/\n", pages=3, private=1)) as site:
        result = BrowserSpider(site.urls, robots_txt_obey=True).start(redis_url=redis_url)
    assert sorted(site.paths()) == sorted(["/robots.txt"] + [f"/page/{n}" for n in range(3)])
    assert result.stats.robots_disallowed_count == 1


# -- AutoThrottle -------------------------------------------------------------------------------


def _throttled_crawl(redis_url: str, workers: int) -> tuple[float, dict[str, float]]:
    """Crawl 10 slow pages with AutoThrottle; returns the request rate the server saw and the delays."""
    with serve(Domain(pages=10, latency=0.2)) as site:
        spider = PageSpider(
            site.urls, autothrottle_enabled=True, autothrottle_start_delay=0.1, autothrottle_max_delay=2.0
        )
        spider.download_delay = 0.05
        result = spider.start(redis_url=redis_url, workers={"default": workers})
    arrivals = site.arrivals()
    assert len(arrivals) == 10
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]), result.stats.autothrottle_delays


def test_autothrottle_holds_one_worker_or_four_to_about_one_request_in_flight_on_a_slow_site(redis_url):
    # Unthrottled, four workers would fetch these 0.2 s pages at 20 a second. The delay is held centrally,
    # so however many workers fetch, the site sees about one request per latency: a bound that a loaded
    # machine, which only makes requests later, cannot break (comparing the two crawls' rates could).
    for workers in (1, 4):
        rate, delays = _throttled_crawl(redis_url, workers)
        assert rate < 1 / 0.2 * 1.25, (workers, rate)
        [delay] = delays.values()
        assert 0.2 <= delay <= 2.0  # it rose from the start delay to the server's latency, under the max


def test_autothrottle_doubles_on_blocked_responses_or_waits_their_retry_after_up_to_the_max(redis_url):
    with serve(Domain(pages=1, status=429), Domain(pages=1, status=503, headers={"Retry-After": "0.3"})) as site:
        spider = PageSpider(
            site.urls, autothrottle_enabled=True, autothrottle_start_delay=0.1, autothrottle_max_delay=0.5
        )
        result = spider.start(redis_url=redis_url)
    doubling, told = (site.arrivals(d) for d in (0, 1))
    assert len(doubling) == len(told) == 1 + spider.max_blocked_retries
    # each retry waits for the refusal before it, then the new delay: 0.1 doubled, capped at 0.5
    for gap, delay in zip(gaps(doubling), [0.2, 0.4, 0.5], strict=True):
        assert gap >= delay - CLOCK_SLACK, gaps(doubling)
    assert all(gap >= 0.3 - CLOCK_SLACK for gap in gaps(told)), gaps(told)
    domains = [url.removeprefix("http://") for url in site.urls]
    assert result.stats.autothrottle_delays == {domains[0]: 0.5, domains[1]: 0.3}


def test_autothrottle_doubles_a_refused_domain_s_delay_or_takes_its_retry_after_within_its_bounds():
    throttle = AutoThrottle(start_delay=0.1, max_delay=0.5, target_concurrency=1)
    delays = [throttle.first(0.0)]
    for _ in range(3):
        delays.append(throttle.next(delays[-1], latency=0.01, ok=False, floor=0.0))
    assert delays == [0.1, 0.2, 0.4, 0.5]
    assert throttle.next(0.1, latency=0.01, ok=False, floor=0.0, wait=0.3) == 0.3
    assert throttle.next(0.4, latency=0.01, ok=False, floor=0.0, wait=9) == 0.5
    assert throttle.next(0.1, latency=0.01, ok=False, floor=0.25) == 0.25  # never under robots.txt's delay


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after([("Retry-After", "12")]) == 12
    assert retry_after([("content-type", "text/html")]) is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 < retry_after([("retry-after", later)]) <= 60
    assert retry_after([("Retry-After", "soon")]) is None
