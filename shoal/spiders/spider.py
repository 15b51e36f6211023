"""Spider: the base class users subclass, with Scrapling's attributes, defaults and hooks."""

import contextlib
import logging
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.common.request import Request
from shoal.spiders.result import CrawlResult, CrawlStats
from shoal.spiders.session import SessionManager

if TYPE_CHECKING:
    from shoal.common.response import Response

BLOCKED_CODES = frozenset({401, 403, 407, 429, 444, 500, 502, 503, 504})
#: shoal's per-crawl quotas; arguments of these names set them (after ``__init__`` runs).
QUOTA_ATTRIBUTES = ("max_pages", "max_items", "max_duration")
#: ``Spider.dedup``'s choices: every request's fingerprint kept (exact), or a Bloom filter (shoal.coordinator.dedup).
DEDUP_MODES = ("exact", "bloom")


#: The spider file shoal is importing, while it does (shoal imports them with a __name__ other than "__main__").
_importing: ContextVar[str] = ContextVar("shoal_importing_spider_file", default="")


@contextlib.contextmanager
def importing(filename: str) -> Iterator[None]:
    """While shoal imports a spider file: a crawl started then (a module-level ``start()``) is an error."""
    token = _importing.set(filename)
    try:
        yield
    finally:
        _importing.reset(token)


def check_dedup(spider: "Spider") -> None:
    """Raise ValueError naming the attribute if ``spider``'s dedup, bloom_capacity or bloom_error_rate is not valid."""
    if spider.dedup not in DEDUP_MODES:
        raise ValueError(f"dedup must be one of {', '.join(map(repr, DEDUP_MODES))}, got {spider.dedup!r}")
    if spider.dedup != "bloom":
        return
    capacity, error_rate = spider.bloom_capacity, spider.bloom_error_rate
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
        raise ValueError(f"bloom_capacity must be a positive integer (the requests to expect), got {capacity!r}")
    if isinstance(error_rate, bool) or not isinstance(error_rate, int | float) or not 0 < error_rate <= 0.1:
        raise ValueError(f"bloom_error_rate must be a number in (0, 0.1] (e.g. 1e-6), got {error_rate!r}")


class CrawlControl:
    """What a spider may ask of the crawl running it: a plain flag the engine reads, so that the spider
    reaches nothing of the engine (nor its Redis)."""

    def __init__(self) -> None:
        self.pause_requested = False


#: The lowest level of a spider's log records shown on the console (stderr); see set_console_log_level.
_console_level = logging.NOTSET


class ConsoleHandler(logging.StreamHandler):
    """Logs to ``sys.stderr`` as it is when a record comes: a live display (``shoal run``'s progress) that
    replaced it prints the record above itself instead of through it."""

    stream = property(lambda self: sys.stderr, lambda self, value: None)


def set_console_log_level(level: int | str) -> None:
    """Show on the console only the records of spiders created from now on that are at ``level`` or above
    (the command line's --log-level); their ``log_file`` still gets every record at their ``logging_level``.
    By default a spider shows every record its ``logging_level`` lets through, as in Scrapling."""
    global _console_level
    _console_level = logging.getLevelName(level) if isinstance(level, str) else level


class SessionConfigurationError(Exception):
    """A spider's ``configure_sessions`` failed or added no session."""


class LogCounterHandler(logging.Handler):
    """Counts a spider's log records by level (reported in the stats as ``log_count``)."""

    LEVELS = ("debug", "info", "warning", "error", "critical")

    def __init__(self) -> None:
        super().__init__()
        self.counts = dict.fromkeys(self.LEVELS, 0)

    def emit(self, record: logging.LogRecord) -> None:
        level = min(max(record.levelno // 10, 1), 5) - 1
        self.counts[self.LEVELS[level]] += 1

    def get_counts(self) -> dict[str, int]:
        return dict(self.counts)


class Spider:
    """Subclass this, set ``name`` and ``start_urls`` (or ``start_requests``), and write ``parse``."""

    name: str | None = None
    start_urls: list[str] = []
    allowed_domains: set[str] = set()

    robots_txt_obey: bool = False

    development_mode: bool = False
    development_cache_dir: str | None = None

    concurrent_requests: int = 4
    concurrent_requests_per_domain: int = 0
    download_delay: float = 0.0
    max_blocked_retries: int = 3

    autothrottle_enabled: bool = False
    autothrottle_start_delay: float = 5.0
    autothrottle_max_delay: float = 60.0
    autothrottle_target_concurrency: float | None = None
    autothrottle_block_backoff: bool = True

    fp_include_kwargs: bool = False
    fp_keep_fragments: bool = False
    fp_include_headers: bool = False

    # shoal: quotas (0: no limit); the crawl stops cleanly once one is reached (shoal.coordinator.quotas)
    max_pages: int = 0
    max_items: int = 0
    max_duration: float = 0.0
    # shoal: sids to retry a blocked request on, cheapest first (shoal.coordinator.escalation)
    escalation: tuple[str, ...] = ()
    # shoal: deduplication (shoal.coordinator.dedup): "exact" keeps every request's fingerprint in a Redis set
    # (about 58 bytes a request); "bloom" a Bloom filter sized for bloom_capacity requests at bloom_error_rate
    # (3.6 bytes a request at 1e-6), which takes that fraction of new requests for seen ones: never fetched
    dedup: str = "exact"
    bloom_capacity: int = 10_000_000
    bloom_error_rate: float = 1e-6

    logging_level: int = logging.DEBUG
    logging_format: str = "[%(asctime)s]:({spider_name}) %(levelname)s: %(message)s"
    logging_date_format: str = "%Y-%m-%d %H:%M:%S"
    log_file: str | None = None

    def __init__(self, crawldir: str | Path | None = None, interval: float = 300.0) -> None:
        if self.name is None:
            raise ValueError(f"{type(self).__name__} must have a name.")
        self.crawldir = Path(crawldir) if crawldir else None
        self._interval = interval
        self._setup_logger()
        self._session_manager = SessionManager()
        try:
            self.configure_sessions(self._session_manager)
        except Exception as e:
            raise SessionConfigurationError(f"Error in {type(self).__name__}.configure_sessions(): {e}") from e
        if len(self._session_manager) == 0:
            raise SessionConfigurationError(f"{type(self).__name__}.configure_sessions() did not add any sessions")
        for sid in self._session_manager.session_ids:
            session = self._session_manager.get(sid)
            if not isinstance(getattr(session, "kind", None), str):
                raise SessionConfigurationError(
                    f"{type(self).__name__}.configure_sessions(): session '{sid}' must be a session from "
                    f"shoal.fetchers (FetcherSession, AsyncDynamicSession, AsyncStealthySession), "
                    f"got {type(session).__name__}"
                )
        check_dedup(self)
        self._stats: CrawlStats | None = None
        self._control: CrawlControl | None = None
        self.logger.info("Spider initialized")

    def _setup_logger(self) -> None:
        self.logger = logging.getLogger(f"shoal.spiders.{self.name}")
        self.logger.setLevel(self.logging_level)
        self.logger.handlers.clear()
        self.logger.propagate = False
        self.log_counter = LogCounterHandler()
        self.logger.addHandler(self.log_counter)
        formatter = logging.Formatter(
            fmt=self.logging_format.format(spider_name=self.name), datefmt=self.logging_date_format
        )
        console = ConsoleHandler()
        console.setLevel(_console_level)
        handlers: list[logging.Handler] = [console]
        if self.log_file:
            Path(self.log_file).parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(self.log_file))
        for handler in handlers:
            handler.setFormatter(formatter)
            self.logger.addHandler(handler)

    @property
    def session_manager(self) -> SessionManager:
        """The sessions this spider configured."""
        return self._session_manager

    def configure_sessions(self, manager: SessionManager) -> None:
        """Add this spider's sessions; the default adds one FetcherSession as "default"."""
        from shoal.common.sessions import FetcherSession

        manager.add("default", FetcherSession())

    async def start_requests(self) -> AsyncGenerator[Request, None]:
        """The first requests: one per ``start_urls`` entry, to the default session, parsed by ``parse``."""
        if not self.start_urls:
            raise RuntimeError(
                "Spider has no starting point, either set `start_urls` or override `start_requests` function."
            )
        for url in self.start_urls:
            yield Request(url, sid=self._session_manager.default_session_id)

    async def parse(self, response: "Response") -> AsyncGenerator[dict[str, Any] | Request | None, None]:
        """The default callback. Subclasses must implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement parse() method")
        yield

    async def on_start(self, resuming: bool = False) -> None:
        """Called before the crawl starts; ``resuming`` is True when it continues a paused crawl."""
        self.logger.debug("Resuming spider from checkpoint" if resuming else "Starting spider")

    async def on_close(self) -> None:
        """Called after the crawl finished."""
        self.logger.debug("Spider closed")

    async def on_error(self, request: Request, error: Exception) -> None:
        """Called when a request fails or its callback raises."""

    async def on_scraped_item(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Process an item before it is stored; return a falsy value to drop it."""
        return item

    async def is_blocked(self, response: "Response") -> bool:
        """Whether the response is a block page; by default a status in BLOCKED_CODES."""
        return response.status in BLOCKED_CODES

    async def retry_blocked_request(self, request: Request, response: "Response") -> Request:
        """Prepare a blocked request before it is retried."""
        return request

    def start(self, use_uvloop: bool = True, **options: Any) -> CrawlResult:
        """Run the crawl on this machine (private Redis, coordinator, workers) and return its result."""
        from shoal.local.run import run_spider

        if filename := _importing.get():
            name = type(self).__name__
            raise RuntimeError(
                f"{name}().start() ran while shoal imported {filename}: shoal starts the crawl itself. "
                f'Call start() only when the file runs as a script: under `if __name__ == "__main__":`'
            )
        return run_spider(self, use_uvloop=use_uvloop, **options)

    async def stream(self, **options: Any) -> AsyncIterator[dict[str, Any]]:
        """Run the crawl on this machine and yield items as they are scraped."""
        from shoal.local.run import stream_spider

        async for item in stream_spider(self, **options):
            yield item

    def pause(self) -> None:
        """Pause the running crawl gracefully, as Ctrl+C does: nothing more is dispatched, what is in flight
        is processed, then the crawl ends resumable (``start()`` returns with ``paused=True``; on the service
        the crawl stays paused until ``shoal resume``)."""
        if self._control is None:
            raise RuntimeError("No active crawl to stop")
        self._control.pause_requested = True

    def attach_control(self, control: CrawlControl | None) -> None:
        """Called by the engine running this spider's crawl when it starts (and with None when it ends)."""
        self._control = control

    @property
    def stats(self) -> CrawlStats:
        """The stats of the running crawl (also while streaming)."""
        if self._stats is None:
            raise RuntimeError("No active crawl. Use this property inside `async for item in spider.stream():`")
        return self._stats

    @stats.setter
    def stats(self, stats: CrawlStats) -> None:
        self._stats = stats

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}'>"
