"""Twin of ``scrapling.spiders.request``: Request, from where shoal keeps it."""

from shoal.common.request import Request

__all__ = ["Request"]
