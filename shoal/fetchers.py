"""The session types, as in Scrapling: ``from shoal.fetchers import FetcherSession, AsyncStealthySession``."""

from shoal.common.proxy import ProxyRotator
from shoal.common.sessions import AsyncDynamicSession, AsyncStealthySession, FetcherSession

__all__ = ["AsyncDynamicSession", "AsyncStealthySession", "FetcherSession", "ProxyRotator"]
