"""The coordinator's Prometheus metrics: every crawl's queues and the worker pools, as last read from Redis.

The snapshot is refreshed every few seconds (the same figures ``shoal status`` shows), so the metrics cost
nothing on the per-request path.
"""

import asyncio
import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shoal.common.state import ACTIVE, CrawlState
from shoal.coordinator.status import CrawlStatus, WorkerStatus, read_crawls, read_workers

log = logging.getLogger("shoal.metrics")


class ServiceCollector:
    """The service as the coordinator last read it from Redis: per-sid queues, crawl totals, pools."""

    def __init__(self) -> None:
        self.crawls: list[CrawlStatus] = []
        self.workers: list[WorkerStatus] = []

    def collect(self) -> Iterator[Metric]:
        sid_labels, crawl_labels = ["crawl", "sid", "pool"], ["crawl", "spider"]
        frontier = GaugeMetricFamily("shoal_frontier_depth", "Requests waiting in a sid's frontier", labels=sid_labels)
        queued = GaugeMetricFamily("shoal_queue_depth", "Jobs waiting in a sid's queue for its pool", labels=sid_labels)
        inflight = GaugeMetricFamily("shoal_inflight", "Requests of a sid in flight", labels=sid_labels)
        serving = GaugeMetricFamily("shoal_sid_live_workers", "Live workers serving a sid", labels=sid_labels)
        sid_pages = CounterMetricFamily("shoal_sid_pages", "Pages fetched for a sid", labels=sid_labels)
        pages = CounterMetricFamily("shoal_pages", "Pages fetched", labels=crawl_labels)
        items = CounterMetricFamily("shoal_items", "Items scraped", labels=crawl_labels)
        errors = CounterMetricFamily("shoal_failed_requests", "Requests that failed", labels=crawl_labels)
        running = GaugeMetricFamily("shoal_crawl_running", "1 while a crawl runs or is paused", labels=crawl_labels)
        for crawl in self.crawls:
            names = [crawl.crawl, crawl.spider]
            pages.add_metric(names, crawl.pages)
            items.add_metric(names, crawl.items)
            errors.add_metric(names, crawl.errors)
            running.add_metric(names, 1 if crawl.state in ACTIVE else 0)
            for sid in crawl.sids.values():
                labels = [crawl.crawl, sid.sid, sid.kind]
                frontier.add_metric(labels, sid.frontier)
                queued.add_metric(labels, sid.queued)
                inflight.add_metric(labels, sid.inflight)
                serving.add_metric(labels, sid.workers)
                sid_pages.add_metric(labels, sid.pages)
        backlog = GaugeMetricFamily(
            "shoal_pool_backlog",
            "Work for a pool across running crawls: frontier + queued + in flight (what autoscalers scale on)",
            labels=["pool"],
        )
        for pool in ("http", "dynamic", "stealth"):
            sids = [sid for crawl in self.crawls if crawl.state == CrawlState.RUNNING for sid in crawl.sids.values()]
            backlog.add_metric([pool], sum(s.frontier + s.queued + s.inflight for s in sids if s.kind == pool))
        workers = GaugeMetricFamily("shoal_workers", "Registered workers per pool", labels=["pool", "state"])
        for pool in sorted({worker.info.kind for worker in self.workers}):
            for alive, state in ((True, "live"), (False, "dead")):
                count = sum(w.info.kind == pool and w.alive == alive for w in self.workers)
                workers.add_metric([pool, state], count)
        yield from (frontier, queued, inflight, serving, sid_pages, pages, items, errors, running, backlog, workers)


async def follow_service(collector: ServiceCollector, redis: Redis, every: float = 2.0) -> None:
    """Keep ``collector``'s snapshot fresh: read every crawl and worker from ``redis`` each ``every`` seconds."""
    while True:
        try:
            collector.crawls, collector.workers = await read_crawls(redis), await read_workers(redis)
        except RedisError as e:  # the metrics keep their last snapshot until Redis answers again
            log.warning("cannot refresh the metrics: %s", e)
        await asyncio.sleep(every)
