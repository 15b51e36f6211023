"""shoal: Scrapling-style spiders as a distributed crawl, coordinated through Redis."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``shoal.Client`` and ``shoal.Crawl``, imported on first use (the CLI and workers need neither)."""
    if name in ("Client", "Crawl"):
        from shoal import client

        return getattr(client, name)
    raise AttributeError(f"module 'shoal' has no attribute {name!r}")
