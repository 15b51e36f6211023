"""Who may read the dashboard and who may steer crawls through it: bearer tokens, compared in constant time.

A read token guards every answer of the API; a write token (which also reads) is needed to pause,
resume or cancel. Without a read token the dashboard answers only on a loopback address, and only to
requests that name a loopback host (so a web page cannot reach it by rebinding its DNS name).
"""

import hmac
import ipaddress
import os
from dataclasses import dataclass

from aiohttp import web

#: Environment variables holding the tokens (better than a command line, which `ps` shows to everyone).
READ_ENV, WRITE_ENV = "SHOAL_DASHBOARD_TOKEN", "SHOAL_DASHBOARD_WRITE_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _same(given: str, token: str) -> bool:
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


@dataclass(frozen=True)
class Access:
    """The dashboard's tokens: ``read`` (empty: anyone on this machine reads) and ``write`` (empty: read-only)."""

    read: str = ""
    write: str = ""

    @classmethod
    def from_env(cls, read: str | None = None, write: str | None = None) -> "Access":
        """Tokens given here, else from $SHOAL_DASHBOARD_TOKEN and $SHOAL_DASHBOARD_WRITE_TOKEN."""
        return cls(read or os.environ.get(READ_ENV, ""), write or os.environ.get(WRITE_ENV, ""))

    def check_host(self, host: str) -> None:
        """Refuse (ValueError) to listen on a non-loopback address without a read token."""
        if not self.read and not is_loopback(host):
            raise ValueError(
                f"the dashboard would be open to anyone who reaches {host}: set a read token in ${READ_ENV} "
                "(or give `shoal dashboard --token`), or listen on 127.0.0.1"
            )

    def can_read(self, request: web.Request) -> bool:
        if not self.read:
            return is_loopback(request.url.host or "")
        given = _bearer(request)
        return _same(given, self.read) or _same(given, self.write)

    def can_write(self, request: web.Request) -> bool:
        return self.can_read(request) and _same(_bearer(request), self.write)


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
