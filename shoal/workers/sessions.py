"""The sessions a worker serves: a crawl's session spec, loaded and checked, made into the live session of its kind."""

from collections.abc import Callable
from typing import Any, Protocol

from redis.asyncio import Redis

from shoal.common.messages import CrawlSpec, FetchResult, RequestRecord
from shoal.common.names import resolve_method
from shoal.common.sessions import session_defaults
from shoal.spiders.loader import bare_spider, find_spider_class, load_module
from shoal.store.specs import SpecError, load_spec
from shoal.workers.proxies import ProxyRotation


class SessionStartError(Exception):
    """A session of a crawl that this worker could not start (the reason says why)."""


class Session(Protocol):
    async def start(self) -> None: ...

    async def fetch(self, crawl: str, request: RequestRecord) -> FetchResult: ...

    async def close(self) -> None: ...


class SessionFactory:
    """Makes the sessions of one ``kind`` from crawl specs: an HttpSession for http, a BrowserSession for
    dynamic and stealth (their browsers in one BrowserProcess, loaded on the first browser session)."""

    def __init__(self, redis: Redis, kind: str, capacity: int, secret: str | None) -> None:
        self.redis = redis
        self.kind = kind
        self.capacity = capacity
        self.secret = secret
        self._browser: Any = None

    async def crawl_spec(self, crawl: str, sid: str) -> CrawlSpec:
        """The crawl's spec; LookupError for a crawl or sid this worker cannot serve."""
        try:
            spec = await load_spec(self.redis, crawl, self.secret)
        except SpecError as e:
            raise LookupError(str(e)) from None
        if sid not in spec.sessions:
            raise LookupError(f"crawl {crawl} has no session '{sid}'")
        given = spec.sessions[sid]
        if given.kind != self.kind:
            raise LookupError(f"session '{sid}' of crawl {crawl} is {given.kind}, this worker is {self.kind}")
        return spec

    def build(self, crawl: str, sid: str, spec: CrawlSpec) -> Session:
        """The live (not yet started) session for a crawl's sid, from the crawl's spec."""
        given = spec.sessions[sid]
        config = {**session_defaults(self.kind), **given.kwargs}
        spiders: list[Any] = []

        def resolve(what: str) -> Callable[[str], Any]:
            def method(name: str) -> Any:  # the spider's code runs in the worker only if a spider method is needed
                if not spiders:
                    module = load_module(spec.source, spec.filename)
                    spiders.append(bare_spider(find_spider_class(module, spec.class_name), spec.args))
                return resolve_method(spiders[0], name, what)

            return method

        rotator = config.get("proxy_rotator")
        rotation = ProxyRotation(self.redis, crawl, sid, rotator, resolve("ProxyRotator strategy")) if rotator else None
        if self.kind == "http":
            from shoal.workers.http import HttpSession

            return HttpSession(config, max_clients=self.capacity, rotation=rotation)
        from shoal.workers.browser_process import BrowserProcess
        from shoal.workers.browser_session import BrowserSession

        if self._browser is None:
            self._browser = BrowserProcess(self.kind)
        tabs = min(given.kwargs.get("max_pages", self.capacity), self.capacity)
        return BrowserSession(self._browser, config, tabs, resolve("page action"), rotation=rotation, sid=sid)

    async def close(self) -> None:
        """Close the browsers the sessions shared (a browser kind's), once the sessions are closed."""
        if self._browser is not None:
            await self._browser.close()
