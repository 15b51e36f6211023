"""shoal: Scrapling-style spiders as a distributed crawl, coordinated through Redis."""

from typing import Any

from shoal.common.version import __version__

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    """``shoal.Client`` and ``shoal.Crawl``, imported on first use (the CLI and workers need neither)."""
    if name in ("Client", "Crawl"):
        from shoal import client

        return getattr(client, name)
    raise AttributeError(f"module 'shoal' has no attribute {name!r}")
