"""ProxyRotator: a list of proxies and how to pick the next one (cyclic, or a spider method)."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.spiders import Spider


class ProxyRotator:
    """Proxies to rotate through: each a URL string or a dict with at least ``server``."""

    def __init__(self, proxies: list[str | dict[str, str]], strategy: Callable[..., Any] | None = None) -> None:
        if not isinstance(proxies, list) or not proxies:
            raise TypeError("ProxyRotator needs a non-empty list of proxies")
        for proxy in proxies:
            if not (isinstance(proxy, str) or (isinstance(proxy, dict) and "server" in proxy)):
                raise TypeError(f"ProxyRotator: each proxy must be a URL or a dict with 'server', got {proxy!r}")
        if strategy is not None and not callable(strategy):
            raise TypeError("ProxyRotator strategy must be a spider method")
        self.proxies = list(proxies)
        self.strategy = strategy
        self._next = 0

    def get_proxy(self) -> str | dict[str, str]:
        """The next proxy, cycling through the list."""
        proxy = self.proxies[self._next % len(self.proxies)]
        self._next += 1
        return proxy

    def to_wire(self, spider: "Spider") -> dict[str, Any]:
        """The rotator as it travels through Redis: proxies, and the strategy by spider method name."""
        from shoal.common.names import method_name

        strategy = method_name(spider, self.strategy, "ProxyRotator strategy") if self.strategy else "cyclic"
        return {"proxies": self.proxies, "strategy": strategy}

    def __len__(self) -> int:
        return len(self.proxies)
