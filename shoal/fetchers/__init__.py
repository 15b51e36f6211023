"""The session types, as in Scrapling: ``from shoal.fetchers import FetcherSession, AsyncStealthySession``.

``Fetcher``, ``AsyncFetcher``, ``DynamicFetcher``, ``DynamicSession``, ``StealthyFetcher`` and ``StealthySession``
are importable, and using them raises TypeError naming the shoal way (``shoal.fetchers.one_off``).
"""

from shoal.common.proxy import ProxyRotator
from shoal.common.sessions import AsyncDynamicSession, AsyncStealthySession, FetcherSession
from shoal.fetchers.one_off import (
    AsyncFetcher,
    DynamicFetcher,
    DynamicSession,
    Fetcher,
    StealthyFetcher,
    StealthySession,
)

__all__ = [
    "AsyncDynamicSession",
    "AsyncFetcher",
    "AsyncStealthySession",
    "DynamicFetcher",
    "DynamicSession",
    "Fetcher",
    "FetcherSession",
    "ProxyRotator",
    "StealthyFetcher",
    "StealthySession",
]
