"""Per-crawl quotas: stop a crawl cleanly after so many pages, items or seconds.

Set as spider attributes (``max_pages``, ``max_items``, ``max_duration``; 0 means no limit) or as
arguments of the same names (``shoal run --max-pages``, ``Client.submit(..., max_pages=...)``). Once a
quota is reached nothing more is dispatched, what is in flight is processed, and the crawl finishes
saying which quota stopped it. ``max_pages`` is exact: it caps the requests dispatched (retries
included). Items past ``max_items`` are dropped (counted in ``items_dropped``).
"""

from dataclasses import dataclass

from shoal.spiders import Spider
from shoal.spiders.spider import QUOTA_ATTRIBUTES


@dataclass(frozen=True)
class Quotas:
    max_pages: int = 0
    max_items: int = 0
    max_duration: float = 0.0

    @classmethod
    def of(cls, spider: Spider) -> "Quotas":
        """The spider's quotas; raises ValueError naming an attribute that is not a number >= 0."""
        values = {}
        for name in QUOTA_ATTRIBUTES:
            raw = getattr(spider, name)
            kind = float if name == "max_duration" else int
            try:
                values[name] = kind(raw or 0)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number >= 0 (0: no limit), got {raw!r}") from None
            if values[name] < 0:
                raise ValueError(f"{name} must be a number >= 0 (0: no limit), got {raw!r}")
        return cls(**values)

    @property
    def page_budget(self) -> int:
        """What the dispatcher takes as its cap on requests dispatched: -1 for none."""
        return self.max_pages or -1

    def reached(self, dispatched: int, items: int, elapsed: float) -> str:
        """Which quota the crawl has reached ("" if none), as the crawl's stop reason."""
        if self.max_pages and dispatched >= self.max_pages:
            return f"max_pages ({self.max_pages}) reached"
        if self.max_items and items >= self.max_items:
            return f"max_items ({self.max_items}) reached"
        if self.max_duration and elapsed >= self.max_duration:
            return f"max_duration ({self.max_duration:g} s) reached"
        return ""
