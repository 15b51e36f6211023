"""ProxyRotator: a list of proxies and how to pick the next one (cyclic, or a spider method), as in Scrapling.

A strategy is called as ``strategy(proxies, current_index)`` and returns ``(proxy, next_index)``. In shoal it
must be a spider method: it travels to the workers by name, and the workers of a sid share one rotation
(its index lives in Redis), so the proxies are used in turn however many workers fetch.
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from shoal.common.names import method_name

Proxy = str | dict[str, str]
#: The name a ProxyRotator without a strategy travels under.
CYCLIC = "cyclic"


def cyclic_rotation(proxies: list[Proxy], current_index: int) -> tuple[Proxy, int]:
    """The default strategy: the proxies in order, starting over after the last."""
    index = current_index % len(proxies)
    return proxies[index], (index + 1) % len(proxies)


def proxy_label(proxy: Proxy) -> str:
    """A proxy as stats show it: scheme, host and port, without credentials."""
    server = proxy.get("server", "") if isinstance(proxy, dict) else proxy
    parts = urlsplit(server if "://" in server else f"http://{server}")
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class ProxyRotator:
    """Proxies to rotate through: each a URL string or a dict with at least ``server``."""

    def __init__(self, proxies: list[Proxy], strategy: Callable[[list[Proxy], int], tuple[Proxy, int]] | None = None):
        if not isinstance(proxies, list) or not proxies:
            raise TypeError("ProxyRotator needs a non-empty list of proxies")
        for proxy in proxies:
            if not (isinstance(proxy, str) or (isinstance(proxy, dict) and "server" in proxy)):
                raise TypeError(f"ProxyRotator: each proxy must be a URL or a dict with 'server', got {proxy!r}")
        if strategy is not None and not callable(strategy):
            raise TypeError("ProxyRotator strategy must be a spider method")
        self.proxies = list(proxies)
        self.strategy = strategy
        self._index = 0

    def get_proxy(self) -> Proxy:
        """The next proxy by the strategy (in this process; workers share their rotation through Redis)."""
        proxy, self._index = (self.strategy or cyclic_rotation)(self.proxies, self._index)
        return proxy

    def to_wire(self, spider: object) -> dict[str, Any]:
        """The rotator as it travels through Redis: proxies, and the strategy by spider method name."""
        strategy = method_name(spider, self.strategy, "ProxyRotator strategy") if self.strategy else CYCLIC
        return {"proxies": self.proxies, "strategy": strategy}

    def __len__(self) -> int:
        return len(self.proxies)
