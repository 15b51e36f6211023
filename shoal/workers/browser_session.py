"""Browser sessions (AsyncDynamicSession on Playwright, AsyncStealthySession on patchright): pages fetched in tabs.

Each (crawl, sid) session keeps one context per proxy and a pool of reused tabs: the worker takes only
as many jobs as it has tabs, a context is recycled after ``RECYCLE_PAGES`` pages (sooner over the
memory limit), and a fetch a browser crash interrupted is retried in the relaunched browser. A session
with a profile (``user_data_dir``; ``dns_over_https``, which Chromium reads from its profile) keeps a
persistent context on a browser of its own; its requests through another proxy use the shared browser.
"""

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlparse

from shoal.common.messages import FetchError, FetchResult, RequestRecord
from shoal.workers import cloudflare
from shoal.workers.browser_process import SCREEN, BrowserProcess, remote_user_agent
from shoal.workers.capture import RequestRecorder, page_html
from shoal.workers.profiles import Profile
from shoal.workers.proxies import ProxyRotation

log = logging.getLogger("shoal.worker.browser")

#: Pages a context serves before it is closed and replaced (memory stays flat over long crawls).
RECYCLE_PAGES = 500
#: What ``disable_resources`` drops (the resource types Scrapling drops).
BLOCKED_RESOURCES = {
    "font",
    "image",
    "media",
    "beacon",
    "object",
    "imageset",
    "texttrack",
    "websocket",
    "csp_report",
    "stylesheet",
}
#: With ``solve_cloudflare``, a session's timeout is at least this (ms), as in Scrapling.
CLOUDFLARE_TIMEOUT = 60_000
#: Stealth arguments a request may give that are launch flags: such a request gets a browser launched with them.
LAUNCH_PER_REQUEST = ("block_webrtc", "hide_canvas", "allow_webgl")


def _error_kind(error: Exception) -> str:
    text = str(error)
    if isinstance(error, ValueError | LookupError):
        return "invalid"
    if "net::ERR_NAME_NOT_RESOLVED" in text:
        return "dns"
    if "net::ERR_CONNECTION" in text:
        return "connection"
    return "timeout" if "timeout" in type(error).__name__.lower() else "browser"


def _blocked(host: str, domains: frozenset[str]) -> bool:
    """Whether ``host`` is one of ``domains`` or a subdomain of one."""
    labels = host.split(".")
    return any(".".join(labels[i:]) in domains for i in range(len(labels)))


def _ad_domains() -> frozenset[str]:
    """The ad and tracker domains ``block_ads`` blocks: the list Scrapling ships (Peter Lowe's ad server
    list), updated with each Scrapling release."""
    from scrapling.engines.toolbelt.ad_domains import AD_DOMAINS

    return frozenset(AD_DOMAINS)


class _Context:
    """One browser context (per proxy) with its pool of idle tabs."""

    def __init__(self, context: Any, persistent: bool = False) -> None:
        self.context = context
        self.persistent = persistent  # on the session's own profile: never recycled
        self.idle: list[Any] = list(context.pages)  # a persistent context opens with a tab
        self.served = 0
        self.busy = 0
        self.retired = False
        self.closed = False
        context.on("close", self._on_close)

    def _on_close(self, _: Any) -> None:
        self.closed = True

    def alive(self) -> bool:
        browser = self.context.browser  # None for a persistent context
        return not self.closed and (browser is None or browser.is_connected())

    async def release(self, page: Any | None) -> None:
        """Give a reserved tab back; a retired context closes (with its tabs) when its last tab comes back."""
        self.busy -= 1
        if self.retired:
            if self.busy == 0:
                await self.context.close()
        elif page is not None and not page.is_closed():
            self.idle.append(page)


class BrowserSession:
    """Fetches requests for one browser session spec (of sid ``sid``) with a pool of ``tabs`` reused tabs."""

    def __init__(
        self,
        process: BrowserProcess,
        config: dict[str, Any],
        tabs: int,
        resolve: Callable[[str], Callable[..., Awaitable[Any]]],
        rotation: ProxyRotation | None = None,
        sid: str = "",
    ) -> None:
        self.process = process
        self.config = dict(config)
        if self.config.get("solve_cloudflare"):
            self.config["timeout"] = max(float(self.config["timeout"]), CLOUDFLARE_TIMEOUT)
        self.tabs = asyncio.Semaphore(tabs)
        self.resolve = resolve
        self.rotation = rotation
        self.sid = sid
        self._blocked = frozenset(self.config.get("blocked_domains") or ())
        if self.config.get("block_ads"):
            self._blocked |= _ad_domains()
        self._profile: Profile | None = None
        self._agent: str | None = None  # the user agent of a stealth session's remote (CDP) browser
        self._contexts: dict[str, _Context] = {}
        self._lock = asyncio.Lock()
        self._setups: weakref.WeakKeyDictionary[Any, tuple] = weakref.WeakKeyDictionary()  # tab -> its headers, routes

    async def start(self) -> None:
        """Launch (or connect to) the browser and open the default context: what the first job would do,
        done now, so that a session that cannot start says so before any request."""
        config = self.config
        try:
            if config["user_data_dir"] and self.rotation is None:
                self._profile = Profile.claim(Path(config["user_data_dir"]) / self.sid)
            elif config["dns_over_https"] and self.rotation is None:  # with proxies, the proxies resolve names
                self._profile = Profile.temporary()
            if self._profile is not None and config["dns_over_https"]:
                self._profile.use_secure_dns()
            if config.get("cdp_url") and self.process.kind == "stealth" and not config.get("useragent"):
                self._agent = await remote_user_agent(await self.process.browser(config))
            if self.rotation is not None:  # the contexts are per proxy, opened as the rotation reaches them
                await self.process.browser(config)
                return
            holder = await self._context(config.get("proxy"))
            await holder.release(None)
        except BaseException:
            await self.close()
            raise

    def _options(self, proxy: Any) -> dict[str, Any]:
        """The context options for ``proxy``."""
        options: dict[str, Any] = {
            "locale": self.config.get("locale"),
            "timezone_id": self.config.get("timezone_id"),
            "user_agent": self.config.get("useragent") or self._agent,
        }
        if proxy:
            options["proxy"] = {"server": proxy} if isinstance(proxy, str) else proxy
        if self.process.kind == "stealth":
            options.update(screen=SCREEN, viewport=SCREEN, color_scheme="dark")
        options.update(self.config.get("additional_args") or {})
        return {k: v for k, v in options.items() if v is not None}

    async def _context(self, proxy: Any, launch: dict[str, Any] | None = None) -> _Context:
        """The context for ``proxy`` (in a browser launched with the session's arguments updated with ``launch``)
        with a tab reserved in it: give it back with ``release``."""
        key = repr((proxy, sorted((launch or {}).items())))
        async with self._lock:
            holder = self._contexts.get(key)
            if (
                holder is not None
                and not holder.persistent
                and (holder.served >= RECYCLE_PAGES or self.process.over_memory())
            ):
                holder.retired = True  # new fetches get a fresh context; this one closes once idle
                if holder.busy == 0:
                    await holder.context.close()
                holder = None
            if holder is None or not holder.alive():
                options = self._options(proxy)
                persistent = self._profile is not None and proxy == self.config.get("proxy") and not launch
                if persistent:
                    context = await self.process.persistent(self.config, self._profile.path, options)
                else:
                    browser = await self.process.browser({**self.config, **(launch or {})})
                    context = await browser.new_context(**options)
                if self.config.get("cookies"):
                    await context.add_cookies(self.config["cookies"])
                if self.config.get("init_script"):
                    await context.add_init_script(path=self.config["init_script"])
                holder = self._contexts[key] = _Context(context, persistent)
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
        """Load ``request.url`` in a tab and return the rendered page. A failed attempt is tried again up to
        the session's ``retries`` attempts in all, ``retry_delay`` seconds apart (at once after a browser
        crash, in a relaunched browser)."""
        attempts = max(1, int(self.config["retries"]))
        async with self.tabs:
            for attempt in range(1, attempts + 1):
                try:
                    return await self._fetch(crawl, request)
                except Exception as e:
                    kind = _error_kind(e)
                    if attempt == attempts or kind == "invalid":
                        error = FetchError(kind=kind, message=f"{request.url}: {str(e).splitlines()[0]}")
                        return FetchResult(crawl=crawl, request=request, error=error)
                    if "closed" in str(e).lower() or "crash" in str(e).lower():
                        log.warning("browser failed during %s (%s); relaunching and retrying", request.url, e)
                    else:
                        log.info("attempt %d at %s failed (%s); retrying", attempt, request.url, str(e).splitlines()[0])
                        await asyncio.sleep(float(self.config["retry_delay"]))
        raise AssertionError("unreachable: the last attempt returns")

    async def _fetch(self, crawl: str, request: RequestRecord) -> FetchResult:
        args = {**self.config, **request.kwargs}
        proxy = request.kwargs.get("proxy")
        if not proxy:
            proxy = await self.rotation.next() if self.rotation is not None else self.config.get("proxy")
        launch = {
            name: request.kwargs[name]
            for name in LAUNCH_PER_REQUEST
            if name in request.kwargs and request.kwargs[name] != self.config.get(name)
        }
        holder = await self._context(proxy, launch)
        page = None
        started = time.perf_counter()
        try:
            page = await self._page(holder)
            headers = {**(self.config.get("extra_headers") or {}), **(request.kwargs.get("extra_headers") or {})}
            await self._prepare(page, {k: str(v) for k, v in headers.items()}, args)
            navigations: list[Any] = []  # the main frame's document responses: the last is the page's

            def navigated(response: Any) -> None:
                if response.request.is_navigation_request() and response.frame == page.main_frame:
                    navigations.append(response)

            page.on("response", navigated)
            recorder = RequestRecorder(page, int(args["max_recorded_requests"])) if args["record_requests"] else None
            try:
                if args.get("page_setup"):
                    await self.resolve(args["page_setup"])(page)
                referer = headers.get("referer") or headers.get("Referer")
                if args["google_search"] and not referer:
                    referer = f"https://www.google.com/search?q={quote_plus(urlparse(request.url).hostname or '')}"
                timeout = float(args["timeout"])
                first = await page.goto(request.url, referer=referer, timeout=timeout)
                await self._settle(page, args, timeout)
                if args.get("solve_cloudflare"):
                    await cloudflare.solve(page)
                    await self._settle(page, args, timeout)
                if args.get("page_action"):
                    await self.resolve(args["page_action"])(page)
                if args.get("wait_selector"):
                    await page.locator(args["wait_selector"]).first.wait_for(
                        state=args["wait_selector_state"], timeout=timeout
                    )
                if args["wait"]:
                    await page.wait_for_timeout(float(args["wait"]))
                response = navigations[-1] if navigations else first
                received = await response.all_headers() if response else {}
                if "html" in received.get("content-type", "html"):  # as in Scrapling: the rendered page
                    body = (await page_html(page, bool(args["pierce_shadow"]))).encode()
                else:  # text, JSON, robots.txt ... as the server sent it, not wrapped in Chromium's viewer page
                    body = await response.body()
                meta: dict[str, Any] = {"proxy": proxy} if proxy else {}
                if recorder is not None:
                    meta["network"] = await recorder.records()
                    if recorder.dropped:
                        meta["network_dropped"] = recorder.dropped
            finally:
                page.remove_listener("response", navigated)
                if recorder is not None:
                    recorder.detach()
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
                meta=meta,
            )
        finally:
            await holder.release(page)

    @staticmethod
    async def _settle(page: Any, args: dict[str, Any], timeout: float) -> None:
        """Wait for the page to load (its DOM with ``load_dom``, the network to go quiet with ``network_idle``)."""
        await page.wait_for_load_state("load", timeout=timeout)
        if args["load_dom"]:
            await page.wait_for_load_state("domcontentloaded", timeout=timeout)
        if args["network_idle"]:
            await page.wait_for_load_state("networkidle", timeout=timeout)

    async def _prepare(self, page: Any, headers: dict[str, str], args: dict[str, Any]) -> None:
        """Give a reused tab this fetch's extra headers, timeouts and resource blocking, talking to the browser
        only when they differ from what the tab has from its previous fetch."""
        blocked = self._blocked | frozenset(args.get("blocked_domains") or ())
        timeout = float(args["timeout"])
        setup = (tuple(sorted(headers.items())), bool(args["disable_resources"]), blocked, timeout)
        if self._setups.get(page) == setup:
            return
        page.set_default_timeout(timeout)  # page actions and waits get the session's timeout, as in Scrapling
        await page.set_extra_http_headers(headers)
        await page.unroute("**/*")
        if args["disable_resources"] or blocked:
            await self._route(page, args["disable_resources"], blocked)
        self._setups[page] = setup

    async def _route(self, page: Any, disable: bool, blocked_domains: frozenset[str]) -> None:
        """Block resource types (``disable``) or domains (and their subdomains) in this tab."""

        async def handle(route: Any) -> None:
            request = route.request
            if (disable and request.resource_type in BLOCKED_RESOURCES) or _blocked(
                urlparse(request.url).hostname or "", blocked_domains
            ):
                await route.abort()
            else:
                await route.continue_()

        await page.route("**/*", handle)

    async def close(self) -> None:
        for holder in self._contexts.values():
            if holder.alive():  # a context of a browser that died went with it
                await holder.context.close()
        self._contexts.clear()
        if self._profile is not None:
            self._profile.release()
            self._profile = None
