"""Connecting to the service's Redis, and showing its URL without the password.

Every process takes one URL: ``redis://[:PASSWORD@]HOST:PORT/DB``, ``unix://[:PASSWORD@]/PATH``, or
``rediss://...`` for TLS, with the TLS settings as query parameters, e.g.
``rediss://:PASSWORD@HOST:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/redis-ca.pem``
(also ``ssl_certfile``/``ssl_keyfile`` for client certificates, ``ssl_check_hostname=true``).
A password with reserved characters is percent-encoded (``p@ss`` is ``p%40ss``).
"""

import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")

#: Query parameters of a Redis URL that hold a secret.
_SECRET_PARAMS = ("password",)


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
    certificate does not verify, which waiting does not mend."""

    def __init__(self, retries: int) -> None:
        super().__init__(ExponentialBackoff(cap=2.0, base=0.05), retries, supported_errors=_UNREACHABLE)

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[[Exception], Any]) -> T:
        async def fail_unless_refused(error: Exception) -> None:
            await fail(error)
            if isinstance(error, (AuthenticationError, ssl.SSLError)):
                raise error

        return await super().call_with_retry(do, fail_unless_refused)


def connection_pool(url: str, *, retries: int = 0) -> ConnectionPool:
    """A connection pool for ``url``; with ``retries``, each command (connecting included) is retried that
    many times (-1: for ever) while Redis is unreachable, backing off from 0.1 s to 2 s between attempts
    (8 retries take about 9 s, enough to ride out a restart)."""
    if not retries:
        return ConnectionPool.from_url(url)
    # retry_on_error too: without it a command that fails on an open connection is not retried
    return ConnectionPool.from_url(url, retry=_RetryWhileUnreachable(retries), retry_on_error=list(_UNREACHABLE))
