"""Twin of ``scrapling.fetchers.chrome``: the names it exports, from where shoal keeps them."""

from shoal.common.sessions import AsyncDynamicSession
from shoal.fetchers.one_off import DynamicFetcher, DynamicSession

__all__ = ["AsyncDynamicSession", "DynamicFetcher", "DynamicSession"]
