"""Adaptive selection's element store, as Scrapling's storage interface, without I/O of its own.

Scrapling's ``auto_save``/``adaptive`` save an element's properties under an identifier and find the element
again from them once the page changed. Its Selector calls the storage synchronously, in the middle of a
callback; shoal's Redis client is asyncio. So the coordinator loads the saved elements of the page's site
from Redis before the callback (``SavedElements``), the Selector reads and writes them in memory through
``ElementStorage``, and what the callback saved is written to Redis with the response's commit
(``shoal.coordinator.adaptive``). Every coordinator of every crawl of the spider shares them.
"""

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson
from lxml.html import HtmlElement
from scrapling.core.storage import StorageSystemMixin
from scrapling.core.utils import _StorageTools
from tld import get_tld


def adaptive_scope(url: str) -> str:
    """The site adaptive data is kept per, as Scrapling scopes it: the registered domain of ``url`` (the
    page's URL, or the ``adaptive_domain`` given), lower-cased; "default" when it has none."""
    result = get_tld(url.lower(), as_object=True, fail_silently=True, fix_protocol=True)
    return (result.fld or result.domain or "default") if result else "default"


class SavedElements:
    """The elements saved for one site (identifier -> Scrapling's element properties as JSON), as loaded
    before a callback, and those the callback saved that differ (``changed``, to be written back)."""

    def __init__(self, scope: str, saved: Mapping[bytes | str, bytes] | None = None) -> None:
        self.scope = scope
        self._saved = {(k.decode() if isinstance(k, bytes) else k): v for k, v in (saved or {}).items()}
        self.changed: dict[str, bytes] = {}

    def get(self, identifier: str) -> bytes | None:
        return self._saved.get(identifier)

    def put(self, identifier: str, data: bytes) -> None:
        if self._saved.get(identifier) != data:
            self._saved[identifier] = data
            self.changed[identifier] = data


# Scrapling requires storage classes wrapped with lru_cache (it keeps one instance per set of arguments).
@lru_cache(maxsize=1)
class ElementStorage(StorageSystemMixin):
    """Scrapling's adaptive storage interface over ``SavedElements``: pass it to a Response as
    ``storage=ElementStorage, storage_args={"url": ..., "elements": saved_elements}``."""

    def __init__(self, url: str | None = None, *, elements: SavedElements) -> None:
        super().__init__(url)
        self.elements = elements

    def save(self, element: HtmlElement, identifier: str) -> None:
        """Keep the element's properties under ``identifier`` (in Scrapling's format)."""
        self.elements.put(identifier, orjson.dumps(_StorageTools.element_to_dict(element)))

    def retrieve(self, identifier: str) -> dict[str, Any] | None:
        """The properties saved under ``identifier``, if any."""
        data = self.elements.get(identifier)
        return orjson.loads(data) if data is not None else None
