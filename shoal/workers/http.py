"""HttpSession: the live FetcherSession of a worker, on curl_cffi, one per (crawl, sid) so cookies persist."""

import asyncio
import random
import time
from typing import Any
from urllib.parse import urlencode

from curl_cffi import CurlError, CurlOpt
from curl_cffi.requests import AsyncSession, RequestsError

from shoal.common.messages import FetchError, FetchResult, RequestRecord

#: Session arguments a request may override, and the curl_cffi argument each becomes.
_OVERRIDABLE = {
    "proxies": "proxies",
    "proxy_auth": "proxy_auth",
    "timeout": "timeout",
    "follow_redirects": "allow_redirects",
    "max_redirects": "max_redirects",
    "verify": "verify",
    "cert": "cert",
}
#: Request arguments passed to curl_cffi as they are.
_PASSED = ("params", "data", "json", "cookies", "auth", "files")

# curl error codes -> FetchError kinds (https://curl.se/libcurl/c/libcurl-errors.html)
_ERROR_KINDS = {
    6: "dns",
    7: "connection",
    28: "timeout",
    47: "redirect",
    35: "tls",
    60: "tls",
    3: "invalid",
    1: "invalid",
    63: "too_large",
    52: "connection",
    56: "connection",
    55: "connection",
}


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class HttpSession:
    """Fetches requests for one FetcherSession spec; never raises for a failed fetch."""

    def __init__(self, config: dict[str, Any], *, max_clients: int = 64, max_body: int = 64 * 2**20) -> None:
        self.config = config
        self.max_body = max_body
        rotator = config.get("proxy_rotator")
        if rotator and rotator.get("strategy", "cyclic") != "cyclic":
            raise ValueError("custom proxy strategies are not supported by the HTTP worker yet; use the cyclic one")
        self._proxies: list[Any] = list(rotator["proxies"]) if rotator else []
        self._next_proxy = 0
        self._session = AsyncSession(max_clients=max_clients, curl_options={CurlOpt.MAXFILESIZE_LARGE: max_body})

    def _proxy(self, kwargs: dict[str, Any]) -> Any:
        if "proxy" in kwargs:
            return kwargs["proxy"]
        if self._proxies:
            proxy = self._proxies[self._next_proxy % len(self._proxies)]
            self._next_proxy += 1
            return proxy
        return self.config.get("proxy")

    def _arguments(self, kwargs: dict[str, Any], proxy: Any) -> dict[str, Any]:
        config = self.config
        impersonate = kwargs.get("impersonate", config["impersonate"])
        if isinstance(impersonate, list):
            impersonate = random.choice(impersonate)
        session_headers = config.get("headers") or {}
        headers = dict(kwargs.get("headers") or {})
        given = {name.lower() for name in headers}
        headers = {**{k: v for k, v in session_headers.items() if k.lower() not in given}, **headers}
        if kwargs.get("stealthy_headers", config["stealthy_headers"]) and "referer" not in {k.lower() for k in headers}:
            headers["referer"] = "https://www.google.com/"
        arguments: dict[str, Any] = {
            "headers": headers,
            "impersonate": impersonate or None,
            "proxy": proxy if isinstance(proxy, str) else None,
        }
        for name, curl_name in _OVERRIDABLE.items():
            arguments[curl_name] = _tuple(kwargs.get(name, config.get(name)))
        for name in _PASSED:
            if kwargs.get(name) is not None:
                arguments[name] = kwargs[name]
        data = arguments.get("data")
        if isinstance(data, dict) and "json" not in arguments:
            arguments["data"] = urlencode(data, doseq=True)
            if "content-type" not in {k.lower() for k in headers}:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        if kwargs.get("http3", config["http3"]):
            arguments["http_version"] = "v3only"
        return arguments

    async def fetch(self, crawl: str, request: RequestRecord) -> FetchResult:
        """Fetch ``request`` with this session's configuration, its own arguments winning."""
        kwargs = request.kwargs
        method = str(kwargs.get("method", "GET")).upper()
        retries = max(1, kwargs.get("retries", self.config["retries"]) or 1)
        delay = kwargs.get("retry_delay", self.config["retry_delay"]) or 0
        proxy = self._proxy(kwargs)
        started = time.perf_counter()
        for attempt in range(retries):
            try:
                response = await self._session.request(method, request.url, **self._arguments(kwargs, proxy))
                break
            except (CurlError, RequestsError) as e:
                kind = _ERROR_KINDS.get(getattr(e, "code", 0) or 0, "other")
                if attempt + 1 >= retries or kind in ("invalid", "too_large", "redirect"):
                    error = FetchError(kind=kind, message=f"{method} {request.url} failed: {e}")
                    return FetchResult(crawl=crawl, request=request, error=error)
                await asyncio.sleep(delay)
            except (TypeError, ValueError) as e:
                error = FetchError(kind="invalid", message=f"{method} {request.url}: {e}")
                return FetchResult(crawl=crawl, request=request, error=error)
        return FetchResult(
            crawl=crawl,
            request=request,
            url=str(response.url),
            status=response.status_code,
            reason=response.reason or "",
            headers=list(response.headers.multi_items()),
            cookies={name: value for name, value in response.cookies.items() if value is not None},
            body=response.content,
            elapsed=time.perf_counter() - started,
            meta={"proxy": proxy} if proxy else {},
        )

    async def close(self) -> None:
        await self._session.close()
