"""Twin of ``scrapling.engines.toolbelt.custom``, where Scrapling documents its Response: shoal's Response."""

from shoal.common.response import Response

__all__ = ["Response"]
