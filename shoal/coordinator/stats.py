"""Crawl statistics: counters kept in a Redis hash, read back as Scrapling's CrawlStats, and kept in step
with the spider's view while its crawl runs."""

import time

import msgspec
from redis.asyncio import Redis

from shoal.common import keys
from shoal.coordinator.dedup import report
from shoal.coordinator.items import to_json
from shoal.coordinator.throttle import DomainDelays
from shoal.spiders import Spider
from shoal.spiders.result import CrawlStats

#: Hash fields that map one-to-one to CrawlStats attributes.
COUNTERS = (
    "requests_count",
    "requests_dispatched",
    "failed_requests_count",
    "offsite_requests_count",
    "robots_disallowed_count",
    "robots_txt_count",
    "cache_hits",
    "cache_misses",
    "response_bytes",
    "items_scraped",
    "items_dropped",
    "blocked_requests_count",
    "escalations_count",
    "bloom_added",
)

#: Prefixes of per-key counters: field ``status:200`` is ``response_status_count["status_200"]``, field
#: ``failed:timeout`` is ``failed_requests_by_kind["timeout"]``.
STATUS, SESSION, DOMAIN_BYTES, WORKER, PROXY = "status:", "sid:", "domain_bytes:", "worker:", "proxy:"
FAILED = "failed:"
#: The CrawlStats dict each prefix counts into.
_TABLES = {
    STATUS: "response_status_count",
    SESSION: "sessions_requests_count",
    WORKER: "workers_requests_count",
    DOMAIN_BYTES: "domains_response_bytes",
    FAILED: "failed_requests_by_kind",
    PROXY: "proxies_requests_count",
}


def add_counts(stats: CrawlStats, counts: dict[str, int]) -> None:
    """Add stats-hash counters (as the engine commits them) to ``stats``."""
    for name, value in counts.items():
        if name in COUNTERS:
            setattr(stats, name, getattr(stats, name) + value)
            continue
        prefix, sep, key = name.partition(":")
        prefix += sep
        if prefix not in _TABLES:  # shoal's own counters without a CrawlStats field (dead_letters, callback_errors ...)
            stats.custom_stats[name] = stats.custom_stats.get(name, 0) + value
            continue
        table = getattr(stats, _TABLES[prefix])
        key = f"status_{key}" if prefix == STATUS else key
        table[key] = table.get(key, 0) + value
        if prefix == PROXY:
            stats.proxies = sorted(table)


def count(stats: dict[str, int], name: str, amount: int = 1) -> None:
    """Add ``amount`` to counter ``name`` of a commit's stats."""
    stats[name] = stats.get(name, 0) + amount


def count_failed(stats: dict[str, int], kind: str) -> None:
    """A request that failed for good: counted in failed_requests_count and by its kind."""
    count(stats, "failed_requests_count")
    count(stats, f"{FAILED}{kind}")


def stats_from_hash(fields: dict[bytes, bytes]) -> CrawlStats:
    """Build CrawlStats from the crawl's stats hash."""
    stats = CrawlStats()
    add_counts(stats, {name.decode(): int(value) for name, value in fields.items()})
    return stats


async def read_stats(redis: Redis, crawl: str) -> CrawlStats:
    """The crawl's stats as stored in Redis: its counters, custom stats, the routes escalation learned, and
    how it deduplicates."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.stats(crawl))
        pipe.hgetall(keys.routes(crawl))
        pipe.hgetall(keys.custom_stats(crawl))
        pipe.hgetall(keys.dedup(crawl))
        counters, routes, custom, dedup = await pipe.execute()
    stats = stats_from_hash(counters)
    report(stats, dedup)
    stats.escalation_routes = {domain.decode(): sid.decode() for domain, sid in routes.items()}
    stats.custom_stats.update({name.decode(): msgspec.json.decode(value) for name, value in custom.items()})
    return stats


class LiveStats:
    """A running crawl's stats as its spider sees them (``spider.stats``): read back from Redis, where the
    custom stats its callbacks set are stored."""

    def __init__(self, redis: Redis, crawl: str, spider: Spider, delays: DomainDelays) -> None:
        self.redis = redis
        self.crawl = crawl
        self.spider = spider
        self.delays = delays
        #: When the crawl first started (seconds since the epoch).
        self.started = time.time()
        self._stored: dict[str, bytes] = {}  # custom stats as last written to Redis
        self._unstorable: set[str] = set()  # custom stats JSON cannot hold, logged once

    async def read(self) -> CrawlStats:
        """The crawl's stats so far."""
        stats = await read_stats(self.redis, self.crawl)
        spider = self.spider
        stats.start_time, stats.end_time = self.started, time.time()
        stats.concurrent_requests = spider.concurrent_requests
        stats.concurrent_requests_per_domain = spider.concurrent_requests_per_domain
        stats.download_delay = spider.download_delay
        stats.autothrottle_enabled = spider.autothrottle_enabled
        stats.autothrottle_delays = self.delays.autothrottle_delays()
        stats.log_levels_counter = spider.log_counter.get_counts()
        return stats

    async def load(self) -> None:
        """Give the spider the stats Redis holds (a resumed crawl's so far), its custom stats as stored."""
        self.spider.stats = await self.read()
        self._stored = self._encoded_custom_stats()

    async def sync(self) -> None:
        """Store the custom stats the spider's callbacks changed, then refresh ``spider.stats`` from Redis."""
        custom = self.spider.stats.custom_stats
        encoded = self._encoded_custom_stats()
        changed = {name: value for name, value in encoded.items() if self._stored.get(name) != value}
        removed = [name for name in self._stored if name not in encoded]
        async with self.redis.pipeline(transaction=False) as pipe:
            if changed:
                pipe.hset(keys.custom_stats(self.crawl), mapping=changed)
            if removed:
                pipe.hdel(keys.custom_stats(self.crawl), *removed)
            await pipe.execute()
        self._stored = encoded
        stats = await self.read()
        stats.custom_stats = custom  # the dict the callbacks hold stays the live one
        self.spider.stats = stats

    def _encoded_custom_stats(self) -> dict[str, bytes]:
        """The spider's custom stats as stored in Redis (JSON); one that JSON cannot hold is logged once and
        kept in this process only."""
        encoded = {}
        for name, value in self.spider.stats.custom_stats.items():
            try:
                encoded[str(name)] = to_json(value)
            except TypeError as e:
                if name not in self._unstorable:
                    self._unstorable.add(name)
                    self.spider.logger.error("custom stat %r is not stored (this process keeps it): %s", name, e)
        return encoded
