"""Connecting to the service's Redis, showing its URL without the password, and backing off while it is down.

Every process takes one URL: ``redis://[:PASSWORD@]HOST:PORT/DB``, ``unix://[:PASSWORD@]/PATH``, or
``rediss://...`` for TLS, with the TLS settings as query parameters, e.g.
``rediss://:PASSWORD@HOST:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/redis-ca.pem``
(also ``ssl_certfile``/``ssl_keyfile`` for client certificates, ``ssl_check_hostname=true``).
A password with reserved characters is percent-encoded (``p@ss`` is ``p%40ss``).
"""

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")

#: Query parameters of a Redis URL that hold a secret.
_SECRET_PARAMS = ("password",)
#: The URL forms every process accepts.
URL_FORMS = "redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS) or unix://[:PASSWORD@]/PATH"


class RedisUnreachable(RedisConnectionError):
    """Redis did not answer at all: the message names the URL (password masked) and what to check. Raised
    while connecting, it reaches the caller as the cause of a redis ConnectionError with the same message."""


def check_url(url: str) -> str:
    """``url`` if it is a Redis URL; else a ValueError naming it (password masked) and the accepted forms."""
    try:
        parse_url(url)
    except ValueError as e:
        reason = "" if "scheme" in str(e) else f" ({e})"
        raise ValueError(f"{masked(url)} is not a Redis URL{reason}: use {URL_FORMS}") from None
    return url


def masked(url: str) -> str:
    """``url`` with its password (in the user part or the query) shown as ``***``: safe to print."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:  # not a URL one can take apart: show none of it
        return "<unparsable Redis URL>"
    in_query = any(name in _SECRET_PARAMS for name, _ in parse_qsl(parts.query))
    if not has_password and not in_query:
        return url
    netloc, query = parts.netloc, parts.query
    if has_password:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    if in_query:
        pairs = [(name, "***" if name in _SECRET_PARAMS else value) for name, value in parse_qsl(query)]
        query = urlencode(pairs, safe="*/")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


#: What a command raises while Redis is unreachable (OSError: a refused or missing socket, on connecting).
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class _RetryWhileUnreachable(Retry):
    """Retries a command while Redis is unreachable; not when Redis refuses the password or its
    certificate does not verify, which waiting does not mend. With ``reach_within``, a Redis that never
    answered yet is given up after that many seconds (RedisUnreachable)."""

    def __init__(self, url: str, retries: int, reach_within: float | None) -> None:
        super().__init__(ExponentialBackoff(cap=2.0, base=0.05), retries, supported_errors=_UNREACHABLE)
        self.url, self.reach_within = url, reach_within
        self.reached = False
        self.failing_since: float | None = None

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[[Exception], Any]) -> T:
        self._backoff.reset()
        failures = 0
        while True:
            try:
                result = await do()
                self.reached = True
                return result
            except self._supported_errors as error:
                failures += 1
                await fail(error)
                if isinstance(error, (AuthenticationError, ssl.SSLError, RedisUnreachable)):
                    raise
                unreached = not self.reached and self.reach_within is not None
                if unreached:
                    self.failing_since = self.failing_since or time.monotonic()
                    left = self.reach_within - (time.monotonic() - self.failing_since)
                    if left <= 0 or 0 <= self._retries < failures:
                        raise unreachable(self.url, error) from error
                elif 0 <= self._retries < failures:
                    raise
                pause = self._backoff.compute(failures)
                await asyncio.sleep(min(pause, left) if unreached else pause)


def unreachable(url: str, error: Exception) -> RedisUnreachable:
    """The error for a Redis that does not answer at ``url``: what happened, and what to check."""
    return RedisUnreachable(
        f"cannot reach Redis at {masked(url)} ({error}). Check that redis-server runs there and that the "
        "host, port and database of --redis (or $REDIS_URL) are right."
    )


def unreachable_cause(error: BaseException | None) -> RedisUnreachable | None:
    """The RedisUnreachable that ``error`` is, or was raised from, if any."""
    while error is not None and not isinstance(error, RedisUnreachable):
        error = error.__cause__
    return error


def connection_pool(url: str, *, retries: int = 0, reach_within: float | None = None) -> ConnectionPool:
    """A connection pool for ``url`` (a ValueError if it is not a Redis URL); with ``retries``, each command
    (connecting included) is retried that many times (-1: for ever) while Redis is unreachable, backing
    off from 0.1 s to 2 s between attempts (8 retries take about 9 s, enough to ride out a restart).
    ``reach_within``: until Redis has answered once, give up after that many seconds with RedisUnreachable."""
    check_url(url)
    if not retries and reach_within is None:
        return ConnectionPool.from_url(url)
    retry = _RetryWhileUnreachable(url, retries, reach_within)
    timeout = {} if reach_within is None else {"socket_connect_timeout": reach_within}
    # retry_on_error too: without it a command that fails on an open connection is not retried
    return ConnectionPool.from_url(url, retry=retry, retry_on_error=list(_UNREACHABLE), **timeout)


def text(value: bytes | str) -> str:
    """A Redis reply (bytes, unless the client decodes replies) as str."""
    return value.decode() if isinstance(value, bytes) else value


#: What a command raises once the connection's own retries gave up: Redis is unreachable, for now.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


class Backoff:
    """The wait before the next attempt while Redis is unreachable: 0.1 s after the first failure, doubling up
    to ``cap`` seconds; none again once an attempt succeeds (``reset``)."""

    def __init__(self, log: logging.Logger, cap: float) -> None:
        self.log = log
        self.cap = cap
        #: Seconds to wait before the next attempt (0.0: Redis answered the last one).
        self.delay = 0.0

    def failed(self, error: Exception) -> float:
        """Note a failed attempt (logged with ``error``); returns the seconds to wait before the next one."""
        self.delay = min(max(self.delay * 2, 0.1), self.cap)
        self.log.warning("Redis unreachable (%s); retrying in %.1f s", error, self.delay)
        return self.delay

    def reset(self) -> None:
        """Redis answered: the next failure waits 0.1 s again."""
        self.delay = 0.0
