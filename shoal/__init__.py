"""shoal: Scrapling-style spiders as a distributed crawl, coordinated through Redis."""

__version__ = "0.1.0"
