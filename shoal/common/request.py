"""Request: what a spider yields to have a page fetched, and its fingerprint for deduplication."""

import hashlib
from collections.abc import Callable
from functools import cached_property
from io import BytesIO
from typing import Any
from urllib.parse import urlencode, urlparse

import msgspec
from w3lib.url import canonicalize_url


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", errors="ignore")


def _stable_repr(value: Any) -> str:
    try:
        return msgspec.json.encode(value, order="sorted").decode()
    except TypeError:
        return repr(value)


def _body(kwargs: dict[str, Any]) -> bytes:
    data = kwargs.get("data")
    if data:
        if isinstance(data, dict | list | tuple):
            return urlencode(data).encode()
        if isinstance(data, BytesIO):
            return data.getvalue()
        return _as_bytes(data)
    payload = kwargs.get("json")
    return msgspec.json.encode(payload) if payload is not None else b""


def _with_params(url: str, params: Any) -> str:
    if not params:
        return url
    query = urlencode(params, doseq=True)
    return f"{url}{'&' if urlparse(url).query else '?'}{query}"


class Request:
    """A page to fetch: the URL, the session (sid) that fetches it, and what to do with the response.

    Extra keyword arguments are the session's fetch arguments (``method``, ``headers``, ``data``,
    ``wait_selector`` ...) and reach the worker unchanged.
    """

    def __init__(
        self,
        url: str,
        sid: str = "",
        callback: Callable[..., Any] | None = None,
        priority: int = 0,
        dont_filter: bool = False,
        meta: dict[str, Any] | None = None,
        _retry_count: int = 0,
        **kwargs: Any,
    ) -> None:
        self.url = url
        self.sid = sid
        self.callback = callback
        self.priority = priority
        self.dont_filter = dont_filter
        self.meta: dict[str, Any] = meta if meta else {}
        self._retry_count = _retry_count
        self._session_kwargs: dict[str, Any] = kwargs
        self._fp: bytes | None = None

    @property
    def session_kwargs(self) -> dict[str, Any]:
        """The fetch arguments this request carries to its session."""
        return self._session_kwargs

    @property
    def retry_count(self) -> int:
        """How many times this request was retried after being blocked."""
        return self._retry_count

    def copy(self) -> "Request":
        """A copy with its own meta dict (the kwargs dict is copied too, its values shared)."""
        return Request(
            self.url,
            sid=self.sid,
            callback=self.callback,
            priority=self.priority,
            dont_filter=self.dont_filter,
            meta=self.meta.copy(),
            _retry_count=self._retry_count,
            **self._session_kwargs,
        )

    def retry_copy(self) -> "Request":
        """The copy that retries this request after a block: counted, one priority lower, not
        deduplicated, and without the proxy that was blocked."""
        retry = self.copy()
        retry._retry_count += 1
        retry.priority -= 1
        retry.dont_filter = True
        retry._session_kwargs.pop("proxy", None)
        retry._session_kwargs.pop("proxies", None)
        return retry

    @cached_property
    def domain(self) -> str:
        """The URL's network location (host, and port when given)."""
        return urlparse(self.url).netloc

    def update_fingerprint(
        self, include_kwargs: bool = False, include_headers: bool = False, keep_fragments: bool = False
    ) -> bytes:
        """Compute (once) and return the SHA-1 fingerprint: sid, method, body and canonical URL.

        ``include_kwargs`` adds the other fetch arguments, ``include_headers`` the headers, and
        ``keep_fragments`` keeps the ``#fragment`` of the URL.
        """
        if self._fp is not None:
            return self._fp
        kwargs = self._session_kwargs
        data: dict[str, Any] = {
            "sid": self.sid,
            "body": _body(kwargs).hex(),
            "method": str(kwargs.get("method", "GET")).upper(),
            "url": canonicalize_url(_with_params(self.url, kwargs.get("params")), keep_fragments=keep_fragments),
        }
        if include_kwargs:
            data["kwargs"] = sorted(
                (key.lower(), _stable_repr(value))
                for key, value in kwargs.items()
                if key.lower() not in ("data", "json")
            )
        if include_headers:
            headers = kwargs.get("headers") or kwargs.get("extra_headers") or {}
            data["headers"] = sorted(
                (_as_bytes(key.lower()).hex(), _as_bytes(value).hex()) for key, value in headers.items()
            )
        self._fp = hashlib.sha1(msgspec.json.encode(data, order="sorted"), usedforsecurity=False).digest()
        return self._fp

    def __repr__(self) -> str:
        callback = getattr(self.callback, "__name__", None)
        return f"<Request({self.url}) priority={self.priority} callback={callback}>"

    def __str__(self) -> str:
        return self.url

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return self.priority < other.priority

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return self.priority > other.priority

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        if self._fp is None or other._fp is None:
            raise RuntimeError("Cannot compare requests before generating their fingerprints!")
        return self._fp == other._fp

    __hash__ = object.__hash__
