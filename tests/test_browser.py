"""Browser worker pools on a real Chromium: rendering, waiting, page actions, laziness, stealth, scaling."""

import functools
import http.server
import json
import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest

from shoal.fetchers import AsyncDynamicSession, AsyncStealthySession, FetcherSession
from shoal.spiders import Request, Response, Spider
from shoal.workers.chromium import find_chromium

try:
    find_chromium()
except FileNotFoundError as e:  # .ci/run installs Debian's chromium; say so rather than fail obscurely
    pytest.skip(f"no Chromium: {e}", allow_module_level=True)

BOTD = Path(__file__).parent / "botd"


class ProductSpider(Spider):
    """The reference page's multi-session spider, as written there (imports and start URL changed)."""

    name = "products"
    logging_level = 30

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession())
        manager.add("stealth", AsyncStealthySession(headless=True, network_idle=True))

    async def parse(self, response: Response):
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, sid="stealth", callback=self.parse_product)
        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page)

    async def parse_product(self, response: Response):
        yield {"name": response.css("h1::text").get(""), "price": response.css(".price::text").get("")}


def test_reference_product_spider_gets_http_listings_and_stealth_product_pages(shop, redis_url):
    spider = ProductSpider()
    spider.start_urls = [f"{shop.url}/products"]
    result = spider.start(redis_url=redis_url)
    expected = sorted((item["name"], item["price"]) for item in shop.site.expected_items())
    assert sorted((item["name"], item["price"]) for item in result.items) == expected
    assert result.stats.sessions_requests_count == {"http": 5, "stealth": 100}


class JsSpider(Spider):
    name = "js"
    logging_level = 30

    def __init__(self, base: str):
        self.base = base
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("browser", AsyncDynamicSession())

    async def start_requests(self):
        yield Request(f"{self.base}/js-delayed?ms=1500", wait_selector="div.loaded", meta={"how": "wait_selector"})
        yield Request(f"{self.base}/js-delayed?ms=5000", meta={"how": "no wait"})
        yield Request(f"{self.base}/product/1", page_action=self.mark, meta={"how": "page_action"})

    async def mark(self, page):
        await page.evaluate("document.body.setAttribute('data-marked', 'by page_action')")

    async def parse(self, response: Response):
        yield {
            "how": response.meta["how"],
            "loaded": response.css("div.loaded::text").get(),
            "marked": response.css("body::attr(data-marked)").get(),
        }


def test_wait_selector_waits_for_content_javascript_inserts_and_page_action_runs_by_name(shop, redis_url):
    items = {item["how"]: item for item in JsSpider(shop.url).start(redis_url=redis_url).items}
    assert items["wait_selector"]["loaded"] == "ready"
    assert items["no wait"]["loaded"] is None  # without waiting, the 5 s script has not run yet
    assert items["page_action"]["marked"] == "by page_action"


def chromium_processes() -> set[int]:
    found = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if "chrom" in process.name():
                found.add(process.pid)
        except psutil.NoSuchProcess:
            pass
    return found


class OneBrowserUnused(Spider):
    name = "unused-browser"
    logging_level = 30
    lazy = True

    def __init__(self, base: str):
        self.start_urls = [f"{base}/slow?seconds=2"]
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession())
        manager.add("stealth", AsyncStealthySession(), lazy=self.lazy)

    async def parse(self, response: Response):
        yield {"url": response.url}


def watch_browsers(run) -> tuple[object, set[int]]:
    seen: set[int] = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.update(chromium_processes())
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        return run(), seen
    finally:
        done.set()
        watcher.join()


def test_a_lazy_browser_session_no_request_uses_never_launches_a_browser(shop, redis_url):
    result, browsers = watch_browsers(lambda: OneBrowserUnused(shop.url).start(redis_url=redis_url))
    assert len(result.items) == 1
    assert browsers == set()


def test_a_non_lazy_browser_session_is_warmed_when_the_crawl_starts(shop, redis_url):
    spider = OneBrowserUnused.__new__(OneBrowserUnused)
    spider.lazy = False
    spider.__init__(shop.url)
    result, browsers = watch_browsers(lambda: spider.start(redis_url=redis_url))
    assert len(result.items) == 1
    assert browsers, "the stealth browser was not started with the crawl"


@pytest.fixture(scope="module")
def botd_page():
    if not (BOTD / "node_modules" / "@fingerprintjs" / "botd").is_dir():
        if not shutil.which("npm"):
            pytest.skip("npm is needed to install @fingerprintjs/botd (see .ci/run)")
        import subprocess

        subprocess.run(["npm", "ci", "--silent"], cwd=BOTD, check=True, timeout=300)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(BOTD))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/botd.html"
    server.shutdown()


class BotCheckSpider(Spider):
    name = "botcheck"
    logging_level = 30

    def __init__(self, page: str):
        self.page = page
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("stealth", AsyncStealthySession(headless=True))
        manager.add("dynamic", AsyncDynamicSession(headless=True))

    async def start_requests(self):
        for sid in ("stealth", "dynamic"):
            yield Request(self.page, sid=sid, wait_selector="#result", meta={"sid": sid})

    async def parse(self, response: Response):
        yield {"sid": response.meta["sid"], **json.loads(response.css("#result::text").get())}


def test_stealth_passes_botd_and_the_classic_checks_headless_where_plain_playwright_fails(botd_page, redis_url):
    items = {item["sid"]: item for item in BotCheckSpider(botd_page).start(redis_url=redis_url).items}
    stealth, dynamic = items["stealth"], items["dynamic"]
    assert stealth["botd"] == {"bot": False}, stealth
    assert stealth["webdriver"] is False
    assert "HeadlessChrome" not in stealth["userAgent"] and "HeadlessChrome" not in stealth["workerUserAgent"]
    assert stealth["userAgent"] == stealth["workerUserAgent"]
    assert "SwiftShader" not in (stealth["webglRenderer"] or "SwiftShader"), stealth["webglRenderer"]
    assert dynamic["botd"].get("bot") is True, dynamic  # the checks can fail: plain headless Playwright is caught


class StealthPages(Spider):
    name = "stealth-pages"
    concurrent_requests = 8
    logging_level = 30

    def __init__(self, base: str):
        self.start_urls = [f"{base}/slow?seconds=0.5&n={n}" for n in range(16)]
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("stealth", AsyncStealthySession())

    async def parse(self, response: Response):
        yield {"url": response.url}


def test_two_stealth_workers_share_a_sid(shop, redis_url):
    result = StealthPages(shop.url).start(redis_url=redis_url, workers={"stealth": 2}, capacity=2)
    assert len(result.items) == 16
    per_worker = result.stats.workers_requests_count
    assert len(per_worker) == 2 and min(per_worker.values()) >= 4, per_worker
