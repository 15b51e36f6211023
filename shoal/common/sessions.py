"""Session specs: what ``FetcherSession(...)``, ``AsyncDynamicSession(...)`` and ``AsyncStealthySession(...)``
are in shoal.

They validate and record their arguments and never open anything; workers build the live sessions from
them. Each argument table below lists the argument, its type and Scrapling's default.
"""

import os
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlparse

import msgspec

from shoal.common.names import checked_method_name, did_you_mean, method_name
from shoal.common.proxy import ProxyRotator
from shoal.common.selector_config import check_selector_config

Seconds = int | float
#: Scrapling's bounds on some browser arguments.
BrowserSeconds = Annotated[int, msgspec.Meta(ge=0)] | Annotated[float, msgspec.Meta(ge=0)]
Impersonate = str | list[str] | None
Proxy = str | dict[str, str] | list[str] | None
WaitState = Literal["attached", "detached", "hidden", "visible"]
FollowRedirects = bool | Literal["safe", "all", "obeycode", "firstonly"]

#: FetcherSession(...) — curl_cffi.
HTTP_SESSION_ARGS: list[tuple[str, Any, Any]] = [
    ("impersonate", Impersonate, "chrome"),
    ("http3", bool | None, False),
    ("stealthy_headers", bool | None, True),
    ("proxies", dict[str, str] | None, None),
    ("proxy", str | None, None),
    ("proxy_auth", tuple[str, str] | None, None),
    ("timeout", Seconds | None, 30),
    ("headers", dict[str, str | None] | None, None),
    ("retries", int | None, 3),
    ("retry_delay", Seconds | None, 1),
    ("follow_redirects", FollowRedirects, "safe"),
    ("max_redirects", int, 30),
    ("verify", bool, True),
    ("cert", str | tuple[str, str] | None, None),
    ("selector_config", dict | None, None),
    ("proxy_rotator", Any, None),
]

#: FetcherSession(...) arguments shoal adds (session-wide, not per request): a body over ``max_body_size``
#: bytes (at most the worker's limit, SHOAL_MAX_BODY_MB) fails the request as too_large, or with
#: ``truncate_body`` arrives cut at the limit with ``response.meta["body_truncated"]`` set.
HTTP_BODY_ARGS: list[tuple[str, Any, Any]] = [
    ("max_body_size", int | None, None),
    ("truncate_body", bool, False),
]

#: What a Request to an HTTP sid may carry besides the session's own arguments.
HTTP_REQUEST_ARGS: list[tuple[str, Any, Any]] = [
    ("method", str, "GET"),
    ("params", dict | list | None, None),
    ("data", Any, None),
    ("json", Any, None),
    ("cookies", dict[str, str] | list | None, None),
    ("auth", tuple[str, str] | None, None),
    # Response.follow() adds these for browser sessions; an HTTP session ignores them.
    ("extra_headers", dict[str, str] | None, None),
    ("google_search", bool, False),
]

#: AsyncDynamicSession(...) — Playwright on Chromium (and the base of the stealth session).
BROWSER_SESSION_ARGS: list[tuple[str, Any, Any]] = [
    ("max_pages", Annotated[int, msgspec.Meta(ge=1, le=50)], 1),
    ("headless", bool, True),
    ("disable_resources", bool, False),
    ("network_idle", bool, False),
    ("load_dom", bool, True),
    ("pierce_shadow", bool, False),
    ("wait_selector", str | None, None),
    ("wait_selector_state", WaitState, "attached"),
    ("cookies", list[dict[str, Any]] | None, None),
    ("google_search", bool, True),
    ("wait", BrowserSeconds, 0),
    ("timezone_id", str | None, None),
    ("page_action", Any, None),
    ("page_setup", Any, None),
    ("proxy", Proxy, None),
    ("proxy_rotator", Any, None),
    ("extra_headers", dict[str, str] | None, None),
    ("timeout", BrowserSeconds, 30000),
    ("init_script", str | None, None),
    ("user_data_dir", str, ""),
    ("selector_config", dict | None, None),
    ("additional_args", dict | None, None),
    ("locale", str | None, None),
    ("real_chrome", bool, False),
    ("cdp_url", str | None, None),
    ("useragent", str | None, None),
    ("extra_flags", list[str] | None, None),
    ("blocked_domains", list[str] | None, None),
    ("block_ads", bool, False),
    ("retries", Annotated[int, msgspec.Meta(ge=1, le=10)], 3),
    ("retry_delay", BrowserSeconds, 1),
    ("record_requests", bool, False),
    ("max_recorded_requests", Annotated[int, msgspec.Meta(ge=1)], 1000),
    ("executable_path", str | None, None),
    ("dns_over_https", bool, False),
]

#: AsyncStealthySession(...) adds these.
STEALTH_SESSION_ARGS: list[tuple[str, Any, Any]] = [
    *BROWSER_SESSION_ARGS,
    ("allow_webgl", bool, True),
    ("hide_canvas", bool, False),
    ("block_webrtc", bool, False),
    ("solve_cloudflare", bool, False),
]

#: Per-request arguments of a browser fetch (Scrapling's fetch params, and what the reference page shows).
BROWSER_FETCH_NAMES = {
    "load_dom",
    "pierce_shadow",
    "wait",
    "network_idle",
    "google_search",
    "timeout",
    "disable_resources",
    "wait_selector",
    "wait_selector_state",
    "page_action",
    "page_setup",
    "selector_config",
    "extra_headers",
    "blocked_domains",
    "proxy",
}
STEALTH_FETCH_NAMES = BROWSER_FETCH_NAMES | {"solve_cloudflare", "block_webrtc", "hide_canvas", "allow_webgl"}
#: Every Request carries these through Response.follow(); a browser session uses ``extra_headers`` instead
#: of ``headers``, and only GET.
COMMON_REQUEST_ARGS: list[tuple[str, Any, Any]] = [
    ("headers", dict[str, str | None] | None, None),
    ("method", str, "GET"),
]

#: Arguments that take a spider method (sent by name).
CALLABLE_ARGS = ("page_action", "page_setup")
#: Browser arguments that say how to launch the browser: meaningless for one already running at ``cdp_url``.
LAUNCH_ARGS = (
    "headless",
    "executable_path",
    "real_chrome",
    "user_data_dir",
    "extra_flags",
    "dns_over_https",
    "block_webrtc",
    "hide_canvas",
    "allow_webgl",
)


def _table(name: str, args: list[tuple[str, Any, Any]]) -> type[msgspec.Struct]:
    return msgspec.defstruct(name, args, kw_only=True, forbid_unknown_fields=True)


def _pick(args: list[tuple[str, Any, Any]], names: set[str]) -> list[tuple[str, Any, Any]]:
    return [arg for arg in args if arg[0] in names]


def _validate(table: type[msgspec.Struct], kwargs: dict[str, Any], what: str, where: str = "") -> msgspec.Struct:
    """Convert ``kwargs`` into ``table``; a TypeError names an unknown or ill-typed argument."""
    known = table.__struct_fields__
    for name in kwargs:
        if name not in known:
            raise TypeError(f"unknown {what} '{name}'{where}{did_you_mean(name, known)}")
    for name in CALLABLE_ARGS:
        if kwargs.get(name) is not None and not callable(kwargs[name]) and not isinstance(kwargs[name], str):
            raise TypeError(f"{what} '{name}'{where} must be a spider method, got {type(kwargs[name]).__name__}")
    if kwargs.get("proxy_rotator") is not None and not isinstance(kwargs["proxy_rotator"], ProxyRotator):
        raise TypeError(f"{what} 'proxy_rotator'{where} must be a ProxyRotator")
    check_selector_config(kwargs.get("selector_config"), f"{what} 'selector_config'{where}")
    try:
        return msgspec.convert(kwargs, table, strict=True)
    except msgspec.ValidationError as e:
        field = str(e).rpartition("`$.")[2].split("`")[0].split(".")[0].split("[")[0]
        message = str(e).partition(" - at ")[0].replace("Expected", "must be").replace("`", "")
        raise TypeError(f"{what} '{field}'{where} {message[0].lower()}{message[1:]}") from None


class SessionSpec:
    """A validated record of a session's arguments; workers build the live session from it."""

    kind: ClassVar[str]
    args: ClassVar[list[tuple[str, Any, Any]]]
    _table: ClassVar[type[msgspec.Struct]]

    def __init_subclass__(cls) -> None:
        if "args" in cls.__dict__:  # a session class, not a base of several
            cls._table = _table(f"{cls.__name__}Args", cls.args)

    def __init__(self, **kwargs: Any) -> None:
        _validate(self._table, kwargs, f"{type(self).__name__} argument")
        if kwargs.get("proxy_rotator") and (kwargs.get("proxy") or kwargs.get("proxies")):
            raise TypeError(
                f"{type(self).__name__}: use either 'proxy_rotator' or a static 'proxy'/'proxies', not both "
                "(a request's own proxy= still overrides the rotator)"
            )
        self._check(kwargs)
        self.kwargs: dict[str, Any] = kwargs

    def _check(self, kwargs: dict[str, Any]) -> None:
        """Raise ValueError for arguments that are each valid but cannot work together."""

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every argument this session takes, with Scrapling's default."""
        return {name: default for name, _, default in cls.args}

    def config(self) -> dict[str, Any]:
        """The full configuration: the defaults updated with the given arguments."""
        return {**self.defaults(), **self.kwargs}

    def wire_kwargs(self, spider: object) -> dict[str, Any]:
        """The given arguments in a form that travels through Redis: spider methods by name."""
        wire: dict[str, Any] = {}
        for name, value in self.kwargs.items():
            if isinstance(value, ProxyRotator):
                value = value.to_wire(spider)
            elif callable(value):
                value = method_name(spider, value, f"{type(self).__name__} argument '{name}'")
            elif isinstance(value, str) and name in CALLABLE_ARGS:  # a method given by name: it must exist
                checked_method_name(spider, value, f"{type(self).__name__} {name.replace('_', ' ')}")
            elif isinstance(value, tuple | set | frozenset):
                value = list(value)
            wire[name] = value
        return wire

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={value!r}" for name, value in self.kwargs.items())
        return f"{type(self).__name__}({args})"


class FetcherSession(SessionSpec):
    """Fast HTTP requests with curl_cffi (browser TLS impersonation), no JavaScript."""

    kind = "http"
    args = HTTP_SESSION_ARGS + HTTP_BODY_ARGS


class BrowserSessionSpec(SessionSpec):
    """The arguments both browser sessions take, and what they cannot combine."""

    def _check(self, kwargs: dict[str, Any]) -> None:
        what = type(self).__name__
        defaults = self.defaults()
        if cdp_url := kwargs.get("cdp_url"):
            parsed = urlparse(cdp_url)
            if parsed.scheme not in ("ws", "wss", "http", "https") or not parsed.netloc:
                raise ValueError(
                    f"{what} argument 'cdp_url' must be a ws://, wss://, http:// or https:// URL with a host"
                )
            launch = [name for name in LAUNCH_ARGS if name in kwargs and kwargs[name] != defaults[name]]
            if launch:
                raise ValueError(
                    f"{what}: {', '.join(repr(name) for name in launch)} set how to launch a browser, but with "
                    f"'cdp_url' the browser at {cdp_url} is already running: drop them, or drop 'cdp_url'"
                )
        if kwargs.get("user_data_dir") and kwargs.get("proxy_rotator"):
            raise ValueError(
                f"{what}: 'user_data_dir' cannot be combined with 'proxy_rotator': a profile is one browser "
                "context, and rotating proxies needs a context per proxy"
            )
        if kwargs.get("real_chrome") and kwargs.get("executable_path"):
            raise ValueError(f"{what}: give either 'real_chrome' or 'executable_path', not both")
        for name in ("init_script", "executable_path"):
            if kwargs.get(name) and not os.path.isabs(kwargs[name]):
                raise ValueError(f"{what} argument '{name}' must be an absolute path (on the workers' machines)")


class AsyncDynamicSession(BrowserSessionSpec):
    """A Playwright-driven Chromium: JavaScript rendering and browser automation."""

    kind = "dynamic"
    args = BROWSER_SESSION_ARGS


class AsyncStealthySession(BrowserSessionSpec):
    """A Chromium hardened against bot detection (patchright)."""

    kind = "stealth"
    args = STEALTH_SESSION_ARGS


SESSION_CLASSES: dict[str, type[SessionSpec]] = {
    cls.kind: cls for cls in (FetcherSession, AsyncDynamicSession, AsyncStealthySession)
}

_REQUEST_TABLES = {
    "http": _table("HttpRequestArgs", HTTP_SESSION_ARGS + HTTP_REQUEST_ARGS),
    "dynamic": _table("DynamicRequestArgs", _pick(BROWSER_SESSION_ARGS, BROWSER_FETCH_NAMES) + COMMON_REQUEST_ARGS),
    "stealth": _table("StealthRequestArgs", _pick(STEALTH_SESSION_ARGS, STEALTH_FETCH_NAMES) + COMMON_REQUEST_ARGS),
}


def session_defaults(kind: str) -> dict[str, Any]:
    """Every argument a session of ``kind`` takes, with Scrapling's default."""
    return SESSION_CLASSES[kind].defaults()


def check_request_kwargs(kind: str, kwargs: dict[str, Any], *, where: str) -> None:
    """Raise TypeError if a Request for a session of ``kind`` carries an argument that kind cannot honour."""
    if not kwargs:
        return
    _validate(_REQUEST_TABLES[kind], kwargs, "argument", f" of {where} (a {kind} session)")
    if kind != "http" and str(kwargs.get("method", "GET")).upper() != "GET":
        raise TypeError(f"{where}: a {kind} (browser) session can only GET, not {kwargs['method']!r}")


def portable_request_kwargs(kind: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """``kwargs`` without the arguments a session of ``kind`` does not take, for moving a request to
    such a session; None when it cannot take the request at all (a browser session only GETs)."""
    if kind != "http" and str(kwargs.get("method", "GET")).upper() != "GET":
        return None
    accepted = _REQUEST_TABLES[kind].__struct_fields__
    return {name: value for name, value in kwargs.items() if name in accepted}


__all__ = ["AsyncDynamicSession", "AsyncStealthySession", "Callable", "FetcherSession", "SessionSpec"]
