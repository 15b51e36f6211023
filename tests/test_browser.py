"""Browser worker pools on a real Chromium: rendering, waiting, page actions, laziness, stealth, scaling."""

import asyncio
import functools
import http.server
import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest

from shoal.common.messages import RequestRecord
from shoal.common.sessions import session_defaults
from shoal.fetchers import AsyncDynamicSession, AsyncStealthySession, FetcherSession
from shoal.spiders import Request, Response, Spider
from shoal.workers.browser_process import BrowserProcess
from shoal.workers.browser_session import BrowserSession
from shoal.workers.chromium import find_chromium
from tests.pool_spiders import ProbeSpider

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


def test_stealth_passes_botd_and_the_classic_checks_headless_where_plain_playwright_fails(botd_page, redis_url):
    items = {item["sid"]: item for item in ProbeSpider(botd_page).start(redis_url=redis_url).items}
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


class BrowserArguments(Spider):
    name = "browser-args"
    logging_level = 50

    def __init__(self, base: str):
        self.base = base
        self.errors: dict[str, str] = {}
        super().__init__()

    def configure_sessions(self, manager):
        manager.add(
            "browser",
            AsyncDynamicSession(
                useragent="shoal-test-agent/1.0",
                extra_headers={"X-Session": "s"},
                cookies=[{"name": "jar", "value": "j", "url": self.base}],
                locale="fr-FR",
                timezone_id="Asia/Tokyo",
            ),
        )

    async def start_requests(self):
        yield Request(f"{self.base}/echo?plain", meta={"case": "plain"})
        yield Request(f"{self.base}/echo?headers", extra_headers={"X-Request": "r"}, meta={"case": "headers"})
        yield Request(f"{self.base}/echo?nogoogle", google_search=False, meta={"case": "nogoogle"})
        yield Request(f"{self.base}/product/2", page_action="no_such_method", meta={"case": "bad action"})

    async def parse(self, response: Response):
        page = response.json()  # a JSON answer comes back as the server sent it, as in Scrapling
        yield {"case": response.meta["case"], "headers": page["headers"], "cookies": page["cookies"]}

    async def on_error(self, request, error):
        self.errors[request.meta["case"]] = str(error)


def test_browser_session_and_request_arguments_reach_the_server(shop, redis_url):
    spider = BrowserArguments(shop.url)
    items = {item["case"]: item for item in spider.start(redis_url=redis_url).items}
    plain, headers = items["plain"]["headers"], items["headers"]["headers"]
    assert plain["user-agent"] == "shoal-test-agent/1.0"
    assert plain["x-session"] == "s" and "x-request" not in plain
    assert headers["x-session"] == "s" and headers["x-request"] == "r"
    assert plain["referer"].startswith("https://www.google.com/search?q=127.0.0.1")
    assert "referer" not in items["nogoogle"]["headers"]
    assert plain["accept-language"].startswith("fr-FR")
    assert items["plain"]["cookies"] == {"jar": "j"}
    assert "page action 'no_such_method' is not a method of BrowserArguments" in spider.errors["bad action"]


def test_a_missing_chromium_is_an_error_naming_what_was_searched(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path))
    monkeypatch.delenv("SHOAL_CHROMIUM", raising=False)
    with pytest.raises(FileNotFoundError, match=r"searched Playwright's browsers.*PATH for chromium"):
        find_chromium()
    monkeypatch.setenv("SHOAL_CHROMIUM", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"\$SHOAL_CHROMIUM names .*nope, which is not an executable"):
        find_chromium()


def _chromium_main_processes() -> list[psutil.Process]:
    """This test process's live Chromium browser processes (not their renderers and helpers)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            name = child.name()  # the browser, not chrome_crashpad_handler, renderers or other helpers
            if (
                name.startswith("chrom")
                and "crashpad" not in name
                and not any(arg.startswith("--type=") for arg in child.cmdline())
            ):
                found.append(child)
        except psutil.Error:  # gone, or a zombie not yet reaped
            continue
    return found


async def _wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_contexts_are_recycled_over_the_memory_limit_and_a_crashed_browser_is_relaunched(shop):
    process = BrowserProcess("dynamic", max_rss=1)  # every check finds the worker over its memory limit
    session = BrowserSession(process, session_defaults("dynamic"), 2, resolve=lambda name: None)
    fetch = functools.partial(session.fetch, "crawl")
    others = {process.pid for process in _chromium_main_processes()}  # left by earlier tests, if any
    try:
        urls = [f"{shop.url}/product/{n}" for n in range(1, 9)]
        results = await asyncio.gather(*(fetch(RequestRecord(url=url, sid="d")) for url in urls))
        assert [result.error for result in results] == [None] * 8
        assert [Response(r.url, r.body, r.status).css("h1::text").get() for r in results] == [
            f"Product {n}" for n in range(1, 9)
        ]
        (browser,) = process.browsers
        assert len(browser.contexts) <= 2  # each retired context closed once its tabs came back

        launched = [process for process in _chromium_main_processes() if process.pid not in others]
        assert launched  # the session's browser (the memory checks may already have relaunched it once)
        path = f"/slow?seconds=2&case={time.time()}"  # the shop is shared: a path of this test's own
        slow = asyncio.create_task(fetch(RequestRecord(url=shop.url + path, sid="d")))
        await _wait_for(lambda: shop.hits(path) == 1)
        for chromium in launched:
            chromium.kill()  # the browser dies with a page in flight
        result = await asyncio.wait_for(slow, 30)
        assert result.error is None and b"<h1>slow</h1>" in result.body
        assert shop.hits(path) == 2  # fetched again in a relaunched browser
        relaunched = {p.pid for p in _chromium_main_processes()} - others
        assert relaunched and not relaunched & {chromium.pid for chromium in launched}
    finally:
        await session.close()
        await process.close()
