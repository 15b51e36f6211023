"""Scrapling's one-off fetchers and synchronous browser sessions: in shoal each is a clear error naming the
shoal way.

They fetch a page in the calling process; shoal fetches every page in its worker pools, where
politeness, deduplication, proxies, retries and the crawl's stats apply. The names exist so that a spider
module that imports them loads; using one raises TypeError saying what to write instead.
"""

from typing import Any, NoReturn


class _FetchesInProcess(type):
    """Metaclass: instantiating the class, or reading any attribute it lacks (``get``, ``fetch``,
    ``configure`` ...), raises TypeError with the class's ``shoal_way`` and Scrapling's (``scrapling_name``)."""

    shoal_way: str
    scrapling_name: str = ""

    def _refuse(cls) -> NoReturn:
        raise TypeError(
            f"shoal.fetchers.{cls.__name__} fetches in the calling process; shoal fetches pages in its worker "
            f"pools. {cls.shoal_way} Outside a crawl, use Scrapling's own: from scrapling.fetchers import "
            f'{cls.scrapling_name or cls.__name__} (pip install "scrapling[fetchers]").'
        )

    def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        cls._refuse()

    def __getattr__(cls, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        cls._refuse()


_HTTP = "In a spider, yield Request(url, callback=...) or response.follow(url) to a FetcherSession's sid."
_DYNAMIC = "In a spider, add AsyncDynamicSession(...) in configure_sessions and yield Requests with its sid."
_STEALTH = "In a spider, add AsyncStealthySession(...) in configure_sessions and yield Requests with its sid."


class Fetcher(metaclass=_FetchesInProcess):
    """Scrapling's one-off HTTP fetcher (not in shoal: see the module's docstring)."""

    shoal_way = _HTTP


class AsyncFetcher(metaclass=_FetchesInProcess):
    """Scrapling's one-off async HTTP fetcher (not in shoal: see the module's docstring)."""

    shoal_way = _HTTP


class DynamicFetcher(metaclass=_FetchesInProcess):
    """Scrapling's one-off browser fetcher (not in shoal: see the module's docstring)."""

    shoal_way = _DYNAMIC
    scrapling_name = "StealthyFetcher"  # Scrapling 0.5 dropped DynamicFetcher


class DynamicSession(metaclass=_FetchesInProcess):
    """Scrapling's synchronous browser session (not in shoal: see the module's docstring)."""

    shoal_way = _DYNAMIC
    scrapling_name = "StealthySession"  # Scrapling 0.5 dropped DynamicSession


class StealthyFetcher(metaclass=_FetchesInProcess):
    """Scrapling's one-off stealth browser fetcher (not in shoal: see the module's docstring)."""

    shoal_way = _STEALTH


class StealthySession(metaclass=_FetchesInProcess):
    """Scrapling's synchronous stealth browser session (not in shoal: see the module's docstring)."""

    shoal_way = _STEALTH
