"""Response: a fetched page as a spider callback sees it, built on Scrapling's own parser.

It is Scrapling's Response (a ``scrapling.parser.Selector``), so callbacks get Scrapling's whole selector API:
``css``/``xpath`` with ``::text``/``::attr()``, ``.text``, ``.first``, ``.get()``/``.getall()``, ``.attrib``,
``find``/``find_all``/``find_by_text``/``find_by_regex``/``find_similar``, ``get_all_text``, ``TextHandler.clean()``,
adaptive selection, ``json()``, ``urljoin``, ``markdown()`` ... and shoal's ``follow``, ``meta`` and ``request``.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from scrapling.engines.toolbelt.custom import Response as ScraplingResponse
from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom

from shoal.common.request import Request

# As in current Scrapling: a followed link is a plain GET unless these are given again.
NON_INHERITED_KWARGS = frozenset({"method", "data", "json", "params", "files", "multipart"})

# lxml reads these wrong from bytes (Scrapling drops NUL bytes before parsing): such bodies are parsed as UTF-8.
_WIDE_ENCODINGS = ("utf-16", "utf-32", "utf_16", "utf_32")


def _sniff(body: bytes) -> str:
    """The encoding of a body that declares none: UTF-8 if it decodes as such, else Windows-1252."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def body_encoding(body: bytes, content_type: str | None) -> str:
    """The encoding of ``body``: its BOM, else the Content-Type charset, else a ``<meta>`` declaration, else
    UTF-8 if it is valid UTF-8, else Windows-1252 (as browsers do)."""
    bom, _ = read_bom(body)
    return bom or http_content_type_encoding(content_type) or html_body_declared_encoding(body[:4096]) or _sniff(body)


class Headers(dict[str, str]):
    """Response headers; names are stored lower-cased and looked up case-insensitively."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        super().__init__((name.lower(), value) for name, value in pairs)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


class Response(ScraplingResponse):
    """A fetched page: Scrapling's Response (status, reason, headers, cookies, body, encoding, meta, and the
    whole Selector API), with ``follow()`` making shoal Requests and ``request`` set by the coordinator.

    The arguments are Scrapling's, with defaults: ``Response(url, content, status, reason, cookies, headers,
    request_headers, encoding, method, history, meta, request=..., **selector_config)``. Without ``encoding``
    it is found from the body's BOM, the Content-Type header, a ``<meta>`` declaration, else sniffed.
    """

    def __init__(
        self,
        url: str,
        content: str | bytes = b"",
        status: int = 200,
        reason: str = "",
        cookies: Mapping[str, str] | tuple[dict[str, str], ...] | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        request_headers: Mapping[str, str] | None = None,
        encoding: str | None = None,
        method: str = "GET",
        history: list[Any] | None = None,
        meta: dict[str, Any] | None = None,
        *,
        request: Request | None = None,
        **selector_config: Any,
    ) -> None:
        body = content.encode("utf-8") if isinstance(content, str) else content
        headers = Headers(headers or ())
        if encoding is None:
            encoding = "utf-8" if isinstance(content, str) else body_encoding(body, headers.get("content-type"))
        parsed, parse_encoding = body, encoding
        if encoding.lower().startswith(_WIDE_ENCODINGS):
            parsed, parse_encoding = body.decode(encoding, errors="replace").encode("utf-8"), "utf-8"
        args = (url, parsed, status, reason, cookies or {}, headers, request_headers or {}, parse_encoding)
        # _log=False: Scrapling logs each fetch here; in shoal the worker fetched it and the crawl logs its own way.
        super().__init__(*args, method, history, meta, _log=False, **selector_config)
        if self._root is None:  # no element at all (empty, comment-only, doctype-only body): an empty document
            super().__init__(url, b"<html/>", *args[2:], method, history, meta, _log=False, **selector_config)
        self.url = url  # Scrapling puts adaptive_domain here; it only scopes the adaptive data
        self.encoding = encoding
        self._body = body
        self.request = request

    @property
    def body(self) -> bytes:
        """The body as fetched (bytes)."""
        return self._body

    def follow(
        self,
        url: str,
        sid: str = "",
        callback: Callable[..., Any] | None = None,
        priority: int | None = None,
        dont_filter: bool = False,
        meta: dict[str, Any] | None = None,
        referer_flow: bool = True,
        **kwargs: Any,
    ) -> Request:
        """A Request for ``url`` (relative to this page) that inherits this response's request.

        The sid, callback, priority and session kwargs of the request that produced this response are
        inherited unless given; new kwargs win. ``method``, ``params``, ``data``, ``json``, ``files`` and
        ``multipart`` are not inherited, nor an inherited Content-Length header. Meta is merged, this
        response's first. With ``referer_flow`` this page's URL becomes the referer.
        """
        if not isinstance(self.request, Request):
            raise TypeError("This response has no request set yet.")
        inherited = {k: v for k, v in self.request.session_kwargs.items() if k not in NON_INHERITED_KWARGS}
        for key in ("headers", "extra_headers"):
            if inherited.get(key):
                inherited[key] = {k: v for k, v in inherited[key].items() if k.lower() != "content-length"}
        session_kwargs = {**inherited, **kwargs}
        if referer_flow:
            session_kwargs["headers"] = {**(session_kwargs.get("headers") or {}), "referer": self.url}
            session_kwargs["extra_headers"] = {**(session_kwargs.get("extra_headers") or {}), "referer": self.url}
            session_kwargs["google_search"] = False
        return Request(
            self.urljoin(url),
            sid=sid or self.request.sid,
            callback=callback or self.request.callback,
            priority=priority if priority is not None else self.request.priority,
            dont_filter=dont_filter,
            meta={**self.meta, **(meta or {})},
            **session_kwargs,
        )
