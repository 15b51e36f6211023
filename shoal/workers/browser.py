"""Browser sessions: AsyncDynamicSession (Playwright) and AsyncStealthySession (patchright), on Chromium.

A worker process owns one Chromium per launch configuration. Each (crawl, sid) session keeps one
long-lived context per proxy and a pool of reused tabs: the worker takes only as many jobs as it has
tabs, a context is recycled after ``RECYCLE_PAGES`` pages so memory stays flat, and a browser that
crashed is relaunched and the interrupted fetch retried.
"""

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus, urlparse

from shoal.common.messages import FetchError, FetchResult, RequestRecord
from shoal.workers.chromium import find_chromium
from shoal.workers.memory import tree_memory
from shoal.workers.proxies import ProxyRotation

log = logging.getLogger("shoal.worker.browser")

#: Pages a context serves before it is closed and replaced (memory stays flat over long crawls).
RECYCLE_PAGES = 500
#: Memory (bytes, the worker with its browser processes) above which contexts are recycled early.
MAX_RSS = int(os.environ.get("SHOAL_BROWSER_MAX_RSS_MB", "1536")) * 2**20
BLOCKED_RESOURCES = {"font", "image", "media", "beacon", "object", "imageset", "texttrack", "websocket", "csp_report"}
#: Flags for every browser: quiet, fast, nothing phoning home (this machine reaches no network).
BASE_FLAGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-dev-shm-usage",  # shared memory in /tmp: a container's 64 MB /dev/shm is enough (bench/dev_shm.py)
    "--password-store=basic",
    "--use-mock-keychain",
    "--mute-audio",
)
#: Stealth: WebGL through Mesa (ANGLE on GL/EGL), not the SwiftShader software renderer that marks headless.
STEALTH_FLAGS = ("--use-gl=angle", "--use-angle=gl-egl", "--ignore-gpu-blocklist", "--window-size=1920,1080")
SCREEN = {"width": 1920, "height": 1080}
#: Session arguments shoal's browser workers do not implement: setting one is an error, never ignored.
UNSUPPORTED = (
    "real_chrome",
    "cdp_url",
    "user_data_dir",
    "record_requests",
    "block_ads",
    "pierce_shadow",
    "dns_over_https",
    "solve_cloudflare",
)


class BrowserProcess:
    """The Chromium processes of one worker, by launch configuration, launched on first use."""

    def __init__(self, kind: str, max_rss: int = MAX_RSS) -> None:
        self.kind = kind
        self.max_rss = max_rss
        self._driver: Any = None
        self._browsers: dict[tuple, Any] = {}
        self._lock = asyncio.Lock()
        self._rss_checked = 0.0
        self._over = False

    def over_memory(self) -> bool:
        """Whether this worker and its browsers use more than ``max_rss`` bytes of proportional set size
        (shared pages counted once across the processes; checked every 5 s)."""
        if time.monotonic() - self._rss_checked > 5:
            self._rss_checked = time.monotonic()
            rss = tree_memory()
            self._over = rss > self.max_rss
            if self._over:
                log.warning("browser worker uses %d MB; recycling contexts", rss // 2**20)
        return self._over

    async def browser(self, config: dict[str, Any]) -> Any:
        """A running browser for ``config``'s launch options (relaunched if it died)."""
        flags = list(BASE_FLAGS) + list(config.get("extra_flags") or [])
        if self.kind == "stealth":
            flags += STEALTH_FLAGS
            if config["block_webrtc"]:
                flags += ["--webrtc-ip-handling-policy=disable_non_proxied_udp", "--force-webrtc-ip-handling-policy"]
            if not config["allow_webgl"]:
                flags += ["--disable-webgl", "--disable-webgl2"]
            if config["hide_canvas"]:
                flags.append("--fingerprinting-canvas-image-data-noise")
        if config.get("locale"):
            flags += [f"--lang={config['locale']}", f"--accept-lang={config['locale']}"]
        executable = find_chromium(config.get("executable_path"))
        key = (executable, bool(config["headless"]), tuple(flags))
        async with self._lock:
            browser = self._browsers.get(key)
            if browser is None or not browser.is_connected():
                if self._driver is None:
                    module = "patchright" if self.kind == "stealth" else "playwright"
                    api = __import__(f"{module}.async_api", fromlist=["async_playwright"])
                    self._driver = await api.async_playwright().start()
                if self.kind == "stealth":
                    flags.append(f"--user-agent={await self._real_user_agent(executable)}")
                browser = await self._driver.chromium.launch(
                    executable_path=executable,
                    headless=config["headless"],
                    args=flags,
                    ignore_default_args=["--enable-automation"],
                    chromium_sandbox=False,
                )
                self._browsers[key] = browser
                log.info("launched %s Chromium %s (%s)", self.kind, browser.version, executable)
        return browser

    async def _real_user_agent(self, executable: str) -> str:
        """The user agent a headful Chromium of this version sends: no "HeadlessChrome" anywhere."""
        probe = await self._driver.chromium.launch(executable_path=executable, headless=True)
        try:
            page = await probe.new_page()
            agent = await page.evaluate("navigator.userAgent")
        finally:
            await probe.close()
        return agent.replace("HeadlessChrome", "Chrome")

    async def close(self) -> None:
        for browser in self._browsers.values():
            if browser.is_connected():
                await browser.close()
        self._browsers.clear()
        if self._driver is not None:
            await self._driver.stop()
            self._driver = None


def _error_kind(error: Exception) -> str:
    text = str(error)
    if isinstance(error, ValueError | LookupError):
        return "invalid"
    if "net::ERR_NAME_NOT_RESOLVED" in text:
        return "dns"
    if "net::ERR_CONNECTION" in text:
        return "connection"
    return "timeout" if "timeout" in type(error).__name__.lower() else "browser"


def _refuse_unsupported(kind: str, args: dict[str, Any]) -> None:
    for name in UNSUPPORTED:
        if args.get(name) not in (None, False, "", [], {}):
            raise ValueError(f"the {kind} worker does not support the argument '{name}' yet")


class _Context:
    """One browser context (per proxy) with its pool of idle tabs."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.idle: list[Any] = []
        self.served = 0
        self.busy = 0
        self.retired = False

    async def release(self, page: Any | None) -> None:
        """Give a reserved tab back; a retired context closes (with its tabs) when its last tab comes back."""
        self.busy -= 1
        if self.retired:
            if self.busy == 0:
                await self.context.close()
        elif page is not None and not page.is_closed():
            self.idle.append(page)


class BrowserSession:
    """Fetches requests for one browser session spec with a pool of ``tabs`` reused tabs."""

    def __init__(
        self,
        process: BrowserProcess,
        config: dict[str, Any],
        tabs: int,
        resolve: Callable[[str], Callable[..., Awaitable[Any]]],
        rotation: ProxyRotation | None = None,
    ) -> None:
        _refuse_unsupported(process.kind, config)
        self.process = process
        self.config = config
        self.tabs = asyncio.Semaphore(tabs)
        self.resolve = resolve
        self.rotation = rotation
        self._contexts: dict[str, _Context] = {}
        self._lock = asyncio.Lock()
        self._setups: weakref.WeakKeyDictionary[Any, tuple] = weakref.WeakKeyDictionary()  # tab -> its headers, routes

    async def warm(self) -> None:
        """Launch the browser and open the default context now, not on the first job."""
        if self.rotation is not None:  # the contexts are per proxy, opened as the rotation reaches them
            await self.process.browser(self.config)
            return
        holder = await self._context(self.config.get("proxy"))
        await holder.release(None)

    async def _context(self, proxy: Any) -> _Context:
        """The context for ``proxy`` with a tab reserved in it: give it back with ``release``."""
        key = repr(proxy)
        async with self._lock:
            holder = self._contexts.get(key)
            if holder is not None and (holder.served >= RECYCLE_PAGES or self.process.over_memory()):
                holder.retired = True  # new fetches get a fresh context; this one closes once idle
                if holder.busy == 0:
                    await holder.context.close()
                holder = None
            if holder is None or not holder.context.browser.is_connected():
                browser = await self.process.browser(self.config)
                options: dict[str, Any] = {
                    "locale": self.config.get("locale"),
                    "timezone_id": self.config.get("timezone_id"),
                }
                if self.config.get("useragent"):
                    options["user_agent"] = self.config["useragent"]
                if proxy:
                    options["proxy"] = {"server": proxy} if isinstance(proxy, str) else proxy
                if self.process.kind == "stealth":
                    options.update(screen=SCREEN, viewport=SCREEN, color_scheme="dark")
                options.update(self.config.get("additional_args") or {})
                context = await browser.new_context(**{k: v for k, v in options.items() if v is not None})
                if self.config.get("cookies"):
                    await context.add_cookies(self.config["cookies"])
                if self.config.get("init_script"):
                    await context.add_init_script(path=self.config["init_script"])
                holder = self._contexts[key] = _Context(context)
            holder.busy += 1
            holder.served += 1
        return holder

    async def _page(self, holder: _Context) -> Any:
        while holder.idle:
            page = holder.idle.pop()
            if not page.is_closed():
                return page
        page = await holder.context.new_page()
        page.on("crash", lambda _: log.warning("a tab crashed"))
        return page

    async def fetch(self, crawl: str, request: RequestRecord) -> FetchResult:
        """Load ``request.url`` in a tab and return the rendered page; retried once after a browser crash."""
        async with self.tabs:
            for attempt in (1, 2):
                try:
                    return await self._fetch(crawl, request)
                except Exception as e:
                    crashed = "closed" in str(e).lower() or "crash" in str(e).lower()
                    if attempt == 1 and crashed:
                        log.warning("browser failed during %s (%s); relaunching and retrying", request.url, e)
                        continue
                    error = FetchError(kind=_error_kind(e), message=f"{request.url}: {str(e).splitlines()[0]}")
                    return FetchResult(crawl=crawl, request=request, error=error)
        raise AssertionError("unreachable")

    async def _fetch(self, crawl: str, request: RequestRecord) -> FetchResult:
        args = {**self.config, **request.kwargs}
        _refuse_unsupported(self.process.kind, request.kwargs)
        proxy = request.kwargs.get("proxy")
        if not proxy:
            proxy = await self.rotation.next() if self.rotation is not None else self.config.get("proxy")
        holder = await self._context(proxy)
        page = None
        started = time.perf_counter()
        try:
            page = await self._page(holder)
            headers = {**(self.config.get("extra_headers") or {}), **(request.kwargs.get("extra_headers") or {})}
            await self._prepare(page, {k: str(v) for k, v in headers.items()}, args)
            if args.get("page_setup"):
                await self.resolve(args["page_setup"])(page)
            referer = headers.get("referer") or headers.get("Referer")
            if args["google_search"] and not referer:
                referer = f"https://www.google.com/search?q={quote_plus(urlparse(request.url).hostname or '')}"
            timeout = float(args["timeout"])
            response = await page.goto(request.url, referer=referer, timeout=timeout)
            await page.wait_for_load_state("load", timeout=timeout)
            if args["load_dom"]:
                await page.wait_for_load_state("domcontentloaded", timeout=timeout)
            if args["network_idle"]:
                await page.wait_for_load_state("networkidle", timeout=timeout)
            if args.get("page_action"):
                await self.resolve(args["page_action"])(page)
            if args.get("wait_selector"):
                await page.locator(args["wait_selector"]).first.wait_for(
                    state=args["wait_selector_state"], timeout=timeout
                )
            if args["wait"]:
                await page.wait_for_timeout(float(args["wait"]))
            received = await response.all_headers() if response else {}
            if "html" in received.get("content-type", "html"):  # as in Scrapling: the rendered page
                body = (await page.content()).encode()
            else:  # text, JSON, robots.txt ... as the server sent it, not wrapped in Chromium's viewer page
                body = await response.body()
            cookies = await holder.context.cookies(page.url)
            return FetchResult(
                crawl=crawl,
                request=request,
                url=page.url,
                status=response.status if response else 200,
                reason=response.status_text if response else "",
                headers=list(received.items()),
                cookies={cookie["name"]: cookie["value"] for cookie in cookies},
                body=body,
                elapsed=time.perf_counter() - started,
                meta={"proxy": proxy} if proxy else {},
            )
        finally:
            await holder.release(page)

    async def _prepare(self, page: Any, headers: dict[str, str], args: dict[str, Any]) -> None:
        """Give a reused tab this fetch's extra headers and resource blocking, talking to the browser only
        when they differ from what the tab has from its previous fetch."""
        blocked_domains = frozenset(args.get("blocked_domains") or ())
        setup = (tuple(sorted(headers.items())), bool(args["disable_resources"]), blocked_domains)
        if self._setups.get(page) == setup:
            return
        await page.set_extra_http_headers(headers)
        await page.unroute("**/*")
        if args["disable_resources"] or blocked_domains:
            await self._route(page, args["disable_resources"], blocked_domains)
        self._setups[page] = setup

    async def _route(self, page: Any, disable: bool, blocked_domains: frozenset[str]) -> None:
        """Block resource types (``disable``) or domains in this tab."""

        async def handle(route: Any) -> None:
            host = urlparse(route.request.url).hostname or ""
            if (disable and route.request.resource_type in BLOCKED_RESOURCES) or any(
                host == d or host.endswith("." + d) for d in blocked_domains
            ):
                await route.abort()
            else:
                await route.continue_()

        await page.route("**/*", handle)

    async def close(self) -> None:
        for holder in self._contexts.values():
            await holder.context.close()
        self._contexts.clear()
