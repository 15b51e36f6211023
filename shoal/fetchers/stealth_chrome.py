"""Twin of ``scrapling.fetchers.stealth_chrome``: the names it exports, from where shoal keeps them."""

from shoal.common.sessions import AsyncStealthySession
from shoal.fetchers.one_off import StealthyFetcher, StealthySession

__all__ = ["AsyncStealthySession", "StealthyFetcher", "StealthySession"]
