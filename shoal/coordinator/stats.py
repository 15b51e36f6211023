"""Crawl statistics: counters kept in a Redis hash, read back as Scrapling's CrawlStats."""

import msgspec
from redis.asyncio import Redis

from shoal.common import keys
from shoal.coordinator.dedup import report
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
