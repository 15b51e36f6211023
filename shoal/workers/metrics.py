"""A worker's Prometheus metrics: what it fetched, counted as it goes (pages, bytes, errors, latency, jobs held)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shoal.common.messages import FetchResult

#: Fetch latency buckets (seconds): HTTP fetches in milliseconds, browser pages in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


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
