"""Prometheus metrics in text format: a worker's own fetches, and the coordinator's view of the service.

A worker counts what it fetches as it goes. The coordinator exports a snapshot of every crawl's
queues and the worker pools, refreshed from Redis every few seconds (the same figures ``shoal
status`` shows), so the metrics cost nothing on the per-request path.
"""

import asyncio
import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.exceptions import RedisError

from shoal.client import Client, CrawlStatus, WorkerStatus
from shoal.common.messages import FetchResult

log = logging.getLogger("shoal.metrics")

#: Fetch latency buckets (seconds): HTTP fetches in milliseconds, browser pages in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def serve(registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> None:
    """Serve ``registry`` at ``http://host:port/metrics`` from a background thread."""
    start_http_server(port, addr=host, registry=registry)


class WorkerMetrics:
    """What one worker fetched: pages, bytes, errors by kind, latency, jobs held."""

    def __init__(self, kind: str) -> None:
        self.registry = registry = CollectorRegistry()
        labels = ["pool", "crawl", "sid"]
        self.kind = kind
        self.pages = Counter("shoal_worker_pages", "Pages fetched", labels, registry=registry)
        self.bytes = Counter("shoal_worker_response_bytes", "Response body bytes", labels, registry=registry)
        self.errors = Counter(
            "shoal_worker_fetch_errors", "Fetches that failed, by kind", [*labels, "kind"], registry=registry
        )
        self.latency = Histogram(
            "shoal_worker_fetch_seconds", "Fetch latency", ["pool", "sid"], buckets=LATENCY_BUCKETS, registry=registry
        )
        self.held = Gauge("shoal_worker_jobs_held", "Jobs this worker holds now", ["pool"], registry=registry)

    def observe(self, result: FetchResult) -> None:
        sid = result.request.sid
        if result.error is not None:
            self.errors.labels(self.kind, result.crawl, sid, result.error.kind).inc()
            return
        self.pages.labels(self.kind, result.crawl, sid).inc()
        self.bytes.labels(self.kind, result.crawl, sid).inc(len(result.body))
        self.latency.labels(self.kind, sid).observe(result.elapsed)


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
            running.add_metric(names, 1 if crawl.state in ("running", "paused") else 0)
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
            sids = [sid for crawl in self.crawls if crawl.state == "running" for sid in crawl.sids.values()]
            backlog.add_metric([pool], sum(s.frontier + s.queued + s.inflight for s in sids if s.kind == pool))
        workers = GaugeMetricFamily("shoal_workers", "Registered workers per pool", labels=["pool", "state"])
        for pool in sorted({worker.info.kind for worker in self.workers}):
            for alive, state in ((True, "live"), (False, "dead")):
                count = sum(w.info.kind == pool and w.alive == alive for w in self.workers)
                workers.add_metric([pool, state], count)
        yield from (frontier, queued, inflight, serving, sid_pages, pages, items, errors, running, backlog, workers)


async def follow_service(collector: ServiceCollector, redis_url: str, every: float = 2.0) -> None:
    """Keep ``collector``'s snapshot fresh: read every crawl and worker each ``every`` seconds."""
    async with Client(redis_url) as client:
        while True:
            try:
                collector.crawls, collector.workers = await client.crawls(), await client.workers()
            except RedisError as e:  # the metrics keep their last snapshot until Redis answers again
                log.warning("cannot refresh the metrics: %s", e)
            await asyncio.sleep(every)
