"""Crawl statistics: counters kept in a Redis hash, read back as Scrapling's CrawlStats."""

from shoal.spiders.result import CrawlStats

#: Hash fields that map one-to-one to CrawlStats attributes.
COUNTERS = (
    "requests_count",
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
)

#: Prefixes of per-key counters: field ``status:200`` is ``response_status_count["status_200"]``.
STATUS, SESSION, DOMAIN_BYTES, WORKER = "status:", "sid:", "domain_bytes:", "worker:"


def stats_from_hash(fields: dict[bytes, bytes]) -> CrawlStats:
    """Build CrawlStats from the crawl's stats hash."""
    stats = CrawlStats()
    for raw_name, raw_value in fields.items():
        name, value = raw_name.decode(), int(raw_value)
        if name in COUNTERS:
            setattr(stats, name, value)
        elif name.startswith(STATUS):
            stats.response_status_count[f"status_{name.removeprefix(STATUS)}"] = value
        elif name.startswith(SESSION):
            stats.sessions_requests_count[name.removeprefix(SESSION)] = value
        elif name.startswith(WORKER):
            stats.workers_requests_count[name.removeprefix(WORKER)] = value
        elif name.startswith(DOMAIN_BYTES):
            stats.domains_response_bytes[name.removeprefix(DOMAIN_BYTES)] = value
        else:
            stats.custom_stats[name] = value
    return stats
