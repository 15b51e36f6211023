"""Twin of ``scrapling.engines.toolbelt``: ProxyRotator, from where shoal keeps it."""

from shoal.common.proxy import ProxyRotator

__all__ = ["ProxyRotator"]
