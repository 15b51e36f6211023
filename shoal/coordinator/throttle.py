"""Per-domain delays, held in Redis where dispatch enforces them, so N workers are as polite as one.

A domain's delay is the minimum gap between two of its requests, across every sid and worker. Its
floor is the spider's ``download_delay``, raised by the domain's robots.txt (Crawl-delay,
Request-rate). With ``autothrottle_enabled`` the delay follows Scrapling's AutoThrottle: it starts at
``autothrottle_start_delay``, moves after each response towards the latency divided by the target
concurrency (a slower answer counts at once, a faster one by halves), doubles on a response that is
not a healthy 2xx (or becomes what its Retry-After asks), and stays within [floor, max delay]. After
such a refusal the domain's next request waits the whole new delay from the refusal on.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from shoal.common import keys
from shoal.store import scripts

if TYPE_CHECKING:
    from shoal.spiders import Spider

BLOCK_BACKOFF_FACTOR = 2.0


def retry_after(headers: Iterable[tuple[str, str]]) -> float | None:
    """The seconds a Retry-After header asks to wait (a number or an HTTP date); None if it has none."""
    value = next((v.strip() for k, v in headers if k.lower() == "retry-after"), "")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class AutoThrottle:
    """Scrapling's AutoThrottle rule for one domain's delay (seconds)."""

    start_delay: float
    max_delay: float
    target_concurrency: float
    block_backoff: bool = True

    def __post_init__(self) -> None:
        if self.target_concurrency <= 0:
            raise ValueError(f"autothrottle_target_concurrency must be above 0, got {self.target_concurrency}")
        if self.max_delay < self.start_delay:
            raise ValueError(
                f"autothrottle_max_delay ({self.max_delay}) can't be lower than "
                f"autothrottle_start_delay ({self.start_delay})"
            )

    @classmethod
    def of(cls, spider: "Spider") -> "AutoThrottle | None":
        """The spider's AutoThrottle, or None when it is not enabled."""
        if not spider.autothrottle_enabled:
            return None
        target = spider.autothrottle_target_concurrency or spider.concurrent_requests_per_domain or 1.0
        return cls(
            spider.autothrottle_start_delay, spider.autothrottle_max_delay, target, spider.autothrottle_block_backoff
        )

    def first(self, floor: float) -> float:
        """The delay of a domain before any of its responses came back."""
        return min(max(floor, self.start_delay), self.max_delay)

    def next(self, delay: float, latency: float, ok: bool, floor: float, wait: float | None = None) -> float:
        """The delay after a response that took ``latency`` s; ``ok``: a 2xx not blocked; ``wait``: its
        Retry-After."""
        target = latency / self.target_concurrency
        new = max((delay + target) / 2, target)
        if not ok:  # a refusal often comes back fast: it never speeds the crawl up
            backoff = delay
            if self.block_backoff:
                backoff = wait if wait is not None else delay * BLOCK_BACKOFF_FACTOR
            new = max(new, backoff, delay)
        return min(max(new, floor), self.max_delay)


class DomainDelays:
    """The per-domain delays of one crawl: kept here, written to ``keys.domain_delay`` for dispatch."""

    def __init__(self, redis: Redis, crawl: str, download_delay: float, throttle: AutoThrottle | None) -> None:
        self.redis = redis
        self.crawl = crawl
        self.download_delay = download_delay
        self.throttle = throttle
        self._robots: dict[str, float] = {}
        self._delays: dict[str, float] = {}
        self._changed: dict[str, bool] = {}  # domain -> it refused a request
        self._store = scripts.register(redis, "domain_delays")

    @property
    def default_ms(self) -> int:
        """The delay of a domain with none of its own, in ms."""
        delay = self.throttle.first(self.download_delay) if self.throttle else self.download_delay
        return round(delay * 1000)

    def floor(self, domain: str) -> float:
        """The lowest delay the domain may have: download_delay, or what its robots.txt asks if more."""
        return max(self.download_delay, self._robots.get(domain, 0.0))

    def _first(self, domain: str) -> float:
        return self.throttle.first(self.floor(domain)) if self.throttle else self.floor(domain)

    async def load(self, robots: dict[str, float]) -> None:
        """Read the delays already set for this crawl; ``robots``: the delays known robots.txt files ask for."""
        self._robots.update(robots)
        for domain, ms in (await self.redis.hgetall(keys.domain_delay(self.crawl))).items():
            self._delays[domain.decode()] = int(ms) / 1000

    def obey_robots(self, domain: str, delay: float) -> None:
        """The domain's robots.txt asks for ``delay`` seconds between requests."""
        self._robots[domain] = delay
        if self._first(domain) != self._delays.get(domain, self.default_ms / 1000):
            self._set(domain, self._first(domain))

    def record(self, domain: str, latency: float, ok: bool, headers: Iterable[tuple[str, str]]) -> None:
        """Feed a response (``ok``: a 2xx not blocked) into AutoThrottle, when enabled."""
        if self.throttle is None:
            return
        delay = self._delays.get(domain, self._first(domain))
        wait = None if ok else retry_after(headers)
        self._set(domain, self.throttle.next(delay, latency, ok, self.floor(domain), wait), refused=not ok)

    def _set(self, domain: str, delay: float, refused: bool = False) -> None:
        self._delays[domain] = delay
        self._changed[domain] = self._changed.get(domain, False) or refused

    async def flush(self) -> None:
        """Write the delays that changed to Redis."""
        if self._changed:
            args = [
                value
                for domain, refused in self._changed.items()
                for value in (domain, round(self._delays[domain] * 1000), int(refused))
            ]
            await self._store(keys=[keys.domain_delay(self.crawl), keys.DOMAIN_NEXT], args=args)
            self._changed.clear()

    def autothrottle_delays(self) -> dict[str, float]:
        """Each domain's current AutoThrottle delay in seconds (empty when AutoThrottle is off)."""
        return dict(self._delays) if self.throttle else {}
