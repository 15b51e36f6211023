"""Prometheus exporting, which a worker's and the coordinator's metrics share: serving a registry over HTTP."""

from prometheus_client import CollectorRegistry, start_http_server


def serve(registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> None:
    """Serve ``registry`` at ``http://host:port/metrics`` from a background thread."""
    start_http_server(port, addr=host, registry=registry)
