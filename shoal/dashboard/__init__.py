"""The web dashboard (``shoal dashboard``, or ``shoal coordinator --dashboard-port``).

Crawls, their per-sid queues with small charts, workers, recent items and errors; pause, resume and
cancel with a write token. It reads everything through ``shoal.Client`` and holds no crawl state."""

from shoal.dashboard.access import Access
from shoal.dashboard.app import Dashboard

__all__ = ["Access", "Dashboard"]
