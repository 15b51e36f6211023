"""Twin of ``scrapling.fetchers.requests``: the names it exports, from where shoal keeps them."""

from shoal.common.sessions import FetcherSession
from shoal.fetchers.one_off import AsyncFetcher, Fetcher

__all__ = ["AsyncFetcher", "Fetcher", "FetcherSession"]
