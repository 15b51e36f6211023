"""HttpSession: the live FetcherSession of an HTTP worker, on curl_cffi; one per (crawl, sid) so cookies persist."""

import asyncio
import os
import random
import time
from typing import Any
from urllib.parse import quote, urlencode

from curl_cffi import CurlECode, CurlError, CurlFollow, CurlHttpVersion, CurlOpt
from curl_cffi.curl import CURL_WRITEFUNC_ERROR
from curl_cffi.requests import AsyncSession

from shoal.common.messages import FetchError, FetchResult, RequestRecord
from shoal.workers.proxies import ProxyRotation

#: Request arguments curl_cffi takes as they are (Scrapling passes them through likewise).
_PASSED = ("params", "data", "json", "cookies", "auth", "files")
#: follow_redirects values -> curl_cffi's allow_redirects. "safe" is curl-impersonate's CURLFOLLOW_SAFE: a
#: redirect hop that would open a connection to a private/internal address is refused before connecting.
_FOLLOW = {follow.name.lower(): follow for follow in CurlFollow}  # safe, all, obeycode, firstonly
#: Browser headers for stealthy_headers when impersonation is off (with it, curl_cffi sends the browser's own).
_BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/152.0.0.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Site": "none",
    "Upgrade-Insecure-Requests": "1",
}
_KINDS = {
    "invalid": {CurlECode.UNSUPPORTED_PROTOCOL, CurlECode.URL_MALFORMAT, CurlECode.BAD_FUNCTION_ARGUMENT},
    "dns": {CurlECode.COULDNT_RESOLVE_HOST, CurlECode.COULDNT_RESOLVE_PROXY},
    "timeout": {CurlECode.OPERATION_TIMEDOUT},
    "redirect": {CurlECode.TOO_MANY_REDIRECTS},
    "too_large": {CurlECode.FILESIZE_EXCEEDED},
    "tls": {CurlECode.SSL_CONNECT_ERROR, CurlECode.PEER_FAILED_VERIFICATION, CurlECode.SSL_CERTPROBLEM,
            CurlECode.SSL_CIPHER, CurlECode.SSL_CACERT_BADFILE, CurlECode.SSL_ENGINE_NOTFOUND,
            CurlECode.SSL_PINNEDPUBKEYNOTMATCH, CurlECode.SSL_INVALIDCERTSTATUS, CurlECode.SSL_CLIENTCERT,
            CurlECode.SSL_ISSUER_ERROR, CurlECode.ECH_REQUIRED},
    "connection": {CurlECode.COULDNT_CONNECT, CurlECode.GOT_NOTHING, CurlECode.SEND_ERROR, CurlECode.RECV_ERROR,
                   CurlECode.PARTIAL_FILE, CurlECode.WEIRD_SERVER_REPLY, CurlECode.HTTP2, CurlECode.HTTP2_STREAM,
                   CurlECode.HTTP3, CurlECode.QUIC_CONNECT_ERROR, CurlECode.PROXY},
}  # fmt: skip
_KIND_OF_CODE = {int(code): kind for kind, codes in _KINDS.items() for code in codes}
#: Kinds that a second attempt cannot change, so they are not retried.
_FINAL = {"invalid", "redirect", "too_large"}
#: The largest body (decoded) a worker accepts; a session's max_body_size can only lower it.
MAX_BODY = int(float(os.environ.get("SHOAL_MAX_BODY_MB", "64")) * 2**20)


class _Body:
    """A curl write callback that collects the body and aborts the transfer once it passes ``limit`` bytes,
    keeping the first ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size, self.over, self.chunks = limit, 0, False, []

    def __call__(self, chunk: bytes) -> int:
        kept = self.limit - self.size
        self.size += len(chunk)
        if self.size > self.limit:
            self.over = True
            self.chunks.append(chunk[:kept])
            return CURL_WRITEFUNC_ERROR
        self.chunks.append(chunk)
        return len(chunk)


def _tuple(value: Any) -> Any:
    """msgpack turned tuples (auth, proxy_auth, cert, a (connect, read) timeout) into lists; curl_cffi wants tuples."""
    return tuple(value) if isinstance(value, list) else value


def _proxy_url(proxy: Any) -> Any:
    """A proxy URL for curl_cffi, from a URL or a Playwright-style {"server", "username", "password"} dict."""
    if not isinstance(proxy, dict):
        return proxy
    server = proxy["server"]
    if not proxy.get("username"):
        return server
    scheme, sep, rest = server.partition("://")
    scheme, rest = (scheme, rest) if sep else ("http", server)
    return f"{scheme}://{quote(proxy['username'], safe='')}:{quote(proxy.get('password', ''), safe='')}@{rest}"


class HttpSession:
    """A FetcherSession's live curl_cffi session; ``fetch`` never raises for a failed fetch. Bodies are
    limited to ``max_body`` bytes (MAX_BODY by default), or the session's smaller ``max_body_size``."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        max_clients: int = 64,
        max_body: int | None = None,
        rotation: ProxyRotation | None = None,
    ) -> None:
        self.config = config
        self.max_body = min(max_body or MAX_BODY, config.get("max_body_size") or MAX_BODY)
        self.truncate = bool(config.get("truncate_body"))
        self.rotation = rotation
        # MAXFILESIZE refuses a too-long Content-Length before the body is read; _Body bounds the rest.
        refuse = {} if self.truncate else {CurlOpt.MAXFILESIZE_LARGE: self.max_body}
        self._session = AsyncSession(max_clients=max_clients, curl_options=refuse)

    async def start(self) -> None:
        """Nothing to start: curl_cffi connects as requests need it."""

    def _get(self, kwargs: dict[str, Any], name: str) -> Any:
        """The request's value for ``name`` if it gives one (even None), else the session's."""
        return kwargs[name] if name in kwargs else self.config.get(name)

    async def _proxy(self, kwargs: dict[str, Any]) -> Any:
        """The proxy of one attempt: the request's, else the next of the rotation, else the session's."""
        if kwargs.get("proxy") or kwargs.get("proxies"):
            return kwargs.get("proxy")
        if self.rotation is not None:
            return await self.rotation.next()
        return self.config.get("proxy")

    def _headers(self, kwargs: dict[str, Any], impersonating: bool) -> dict[str, Any]:
        """Session headers under the request's (case-insensitively), plus what stealthy_headers adds."""
        given = dict(kwargs.get("headers") or {})
        lowered = {name.lower() for name in given}
        session = self.config.get("headers") or {}
        headers = {**{k: v for k, v in session.items() if k.lower() not in lowered}, **given}
        present = {name.lower() for name in headers}
        if self._get(kwargs, "stealthy_headers"):
            if "referer" not in present:
                headers["referer"] = "https://www.google.com/"
            if not impersonating:
                headers.update({k: v for k, v in _BROWSER_HEADERS.items() if k.lower() not in present})
        elif not impersonating and "user-agent" not in present:
            headers["User-Agent"] = _BROWSER_HEADERS["User-Agent"]
        return headers

    def _arguments(self, kwargs: dict[str, Any], proxy: Any, body: _Body) -> dict[str, Any]:
        """curl_cffi's arguments for one attempt: the session's configuration, the request's winning."""
        impersonate = self._get(kwargs, "impersonate")
        if isinstance(impersonate, list):
            impersonate = random.choice(impersonate) if impersonate else None
        follow = self._get(kwargs, "follow_redirects")
        arguments: dict[str, Any] = {
            "headers": self._headers(kwargs, bool(impersonate)),
            "impersonate": impersonate or None,
            "proxy": _proxy_url(proxy),
            "proxies": self._get(kwargs, "proxies") or None,
            "proxy_auth": _tuple(self._get(kwargs, "proxy_auth")),
            "timeout": _tuple(self._get(kwargs, "timeout")),
            "allow_redirects": _FOLLOW.get(follow, follow) if isinstance(follow, str) else bool(follow),
            "max_redirects": self._get(kwargs, "max_redirects"),
            "verify": self._get(kwargs, "verify"),
            "cert": _tuple(self._get(kwargs, "cert")),
            "content_callback": body,
        }
        arguments.update({name: kwargs[name] for name in _PASSED if kwargs.get(name) is not None})
        if "auth" in arguments:
            arguments["auth"] = _tuple(arguments["auth"])
        data = arguments.get("data")
        if isinstance(data, dict) and arguments.get("json") is None:
            arguments["data"] = urlencode(data, doseq=True)
            if not any(name.lower() == "content-type" for name in arguments["headers"]):
                arguments["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
        if self._get(kwargs, "http3"):
            arguments["http_version"] = CurlHttpVersion.V3ONLY
        return arguments

    def _error(self, error: Exception, body: _Body) -> FetchError:
        """Name what went wrong: a kind, and a cause without curl's boilerplate."""
        text = str(error).split(" See https://curl.se/")[0]
        cause = text[text.find("curl: (") :] if "curl: (" in text else text
        code = getattr(error, "code", None)
        if isinstance(error, CurlError) and code is not None:
            kind = "invalid" if "URL rejected" in cause else _KIND_OF_CODE.get(int(code), "other")
            if body.over:
                kind, cause = "too_large", f"body is over the limit of {self.max_body} bytes ({body.size} read)"
            elif kind == "too_large":
                response = getattr(error, "response", None)
                length = response.headers.get("content-length", "?") if response is not None else "?"
                cause = f"body of {length} bytes (Content-Length) is over the limit of {self.max_body} bytes"
            elif kind == "connection" and "SSRF" in cause:
                kind = "redirect"
        else:
            kind = "invalid" if isinstance(error, TypeError | ValueError | NotImplementedError) else "other"
            cause = f"{type(error).__name__}: {cause}"
        return FetchError(kind=kind, message=cause)

    async def fetch(self, crawl: str, request: RequestRecord) -> FetchResult:
        """Fetch ``request`` with this session's configuration, the request's own arguments winning."""
        kwargs = request.kwargs
        method = str(kwargs.get("method") or "GET").upper()
        attempts = max(1, self._get(kwargs, "retries") or 1)
        delay = self._get(kwargs, "retry_delay") or 0
        for attempt in range(attempts):
            proxy = await self._proxy(kwargs)
            body = _Body(self.max_body)
            started = time.perf_counter()
            try:
                response = await self._session.request(method, request.url, **self._arguments(kwargs, proxy, body))
            except Exception as e:
                response = getattr(e, "response", None)
                if body.over and self.truncate and response is not None:
                    return self._result(crawl, request, response, body, proxy, started)
                error = self._error(e, body)
                if error.kind in _FINAL or attempt + 1 >= attempts:
                    error.message = f"{method} {request.url}: {error.message}"
                    return FetchResult(crawl=crawl, request=request, error=error)
                await asyncio.sleep(delay)
                continue
            return self._result(crawl, request, response, body, proxy, started)
        raise AssertionError("unreachable: the last attempt returns")

    def _result(
        self, crawl: str, request: RequestRecord, response: Any, body: _Body, proxy: Any, started: float
    ) -> FetchResult:
        meta: dict[str, Any] = {"proxy": proxy} if proxy else {}
        if body.over:
            meta["body_truncated"] = True
        return FetchResult(
            crawl=crawl,
            request=request,
            url=str(response.url),
            status=response.status_code,
            reason=response.reason or "",
            headers=list(response.headers.multi_items()),
            cookies={name: value for name, value in response.cookies.items() if value is not None},
            body=b"".join(body.chunks),
            elapsed=time.perf_counter() - started,
            meta=meta,
        )

    async def close(self) -> None:
        """Close the curl_cffi session and its connections."""
        await self._session.close()
