"""Session specs validate and record their arguments, and carry callables by spider method name."""

import pytest

from shoal.common.sessions import check_request_kwargs, session_defaults
from shoal.fetchers import AsyncDynamicSession, AsyncStealthySession, FetcherSession, ProxyRotator
from shoal.spiders import Spider


class Shop(Spider):
    name = "shop"

    async def parse(self, response):
        yield None

    async def scroll(self, page):
        pass

    def pick_proxy(self, proxies, index):
        return proxies[0], index + 1


def test_each_session_records_its_kind_and_only_the_given_arguments():
    assert (FetcherSession.kind, AsyncDynamicSession.kind, AsyncStealthySession.kind) == ("http", "dynamic", "stealth")
    spec = AsyncStealthySession(headless=True, network_idle=True)
    assert spec.kwargs == {"headless": True, "network_idle": True}
    assert spec.config()["solve_cloudflare"] is False and spec.config()["network_idle"] is True


def test_defaults_are_scraplings():
    http = session_defaults("http")
    assert (http["impersonate"], http["timeout"], http["retries"], http["follow_redirects"]) == (
        "chrome",
        30,
        3,
        "safe",
    )
    assert http["stealthy_headers"] is True
    browser = session_defaults("dynamic")
    assert (browser["headless"], browser["timeout"], browser["max_pages"], browser["google_search"]) == (
        True,
        30000,
        1,
        True,
    )
    assert "solve_cloudflare" not in browser and "solve_cloudflare" in session_defaults("stealth")


def test_unknown_argument_names_it_and_suggests():
    with pytest.raises(
        TypeError, match=r"unknown FetcherSession argument 'impersonat' \(did you mean 'impersonate'\?\)"
    ):
        FetcherSession(impersonat="chrome")


def test_stealth_only_arguments_are_unknown_to_the_dynamic_session():
    with pytest.raises(TypeError, match="unknown AsyncDynamicSession argument 'solve_cloudflare'"):
        AsyncDynamicSession(solve_cloudflare=True)


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (FetcherSession, {"timeout": "30"}, "FetcherSession argument 'timeout' must be int | float | null, got str"),
        (FetcherSession, {"headers": {"a": 1}}, "argument 'headers' must be str | null, got int"),
        (FetcherSession, {"follow_redirects": "sometimes"}, "argument 'follow_redirects' invalid enum value"),
        (AsyncStealthySession, {"headless": "yes"}, "argument 'headless' must be bool, got str"),
        (AsyncDynamicSession, {"wait_selector_state": "shown"}, "argument 'wait_selector_state' invalid"),
    ],
)
def test_ill_typed_argument_is_a_type_error_naming_it(cls, kwargs, message):
    with pytest.raises(TypeError, match=message.replace("|", r"\|")):
        cls(**kwargs)


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        FetcherSession("chrome")


def test_page_action_travels_by_spider_method_name():
    spider = Shop()
    spec = AsyncStealthySession(page_action=spider.scroll, blocked_domains={"ads.test"})
    assert spec.wire_kwargs(spider) == {"page_action": "scroll", "blocked_domains": ["ads.test"]}


def test_lambda_or_foreign_page_action_is_rejected_at_spider_load():
    spider = Shop()

    def local_function(page):
        pass

    for action in (lambda page: None, local_function, print):
        with pytest.raises(ValueError, match="must be a method of the spider"):
            AsyncDynamicSession(page_action=action).wire_kwargs(spider)


def test_page_action_must_be_callable():
    with pytest.raises(TypeError, match="'page_action' must be a spider method, got int"):
        AsyncDynamicSession(page_action=3)


def test_proxy_rotator_travels_with_its_strategy_by_name():
    spider = Shop()
    cyclic = ProxyRotator(["http://p1:8080", {"server": "http://p2:8080"}])
    assert [cyclic.get_proxy() for _ in range(3)] == ["http://p1:8080", {"server": "http://p2:8080"}, "http://p1:8080"]
    spec = FetcherSession(proxy_rotator=ProxyRotator(["http://p1:8080"], strategy=spider.pick_proxy))
    assert spec.wire_kwargs(spider) == {"proxy_rotator": {"proxies": ["http://p1:8080"], "strategy": "pick_proxy"}}
    assert FetcherSession(proxy_rotator=cyclic).wire_kwargs(spider)["proxy_rotator"]["strategy"] == "cyclic"


def test_a_proxy_rotator_and_a_static_proxy_on_one_session_are_refused():
    rotator = ProxyRotator(["http://p1:8080"])
    for static in ({"proxy": "http://p2:8080"}, {"proxies": {"https": "http://p2:8080"}}):
        with pytest.raises(TypeError, match="FetcherSession: use either 'proxy_rotator' or a static 'proxy'"):
            FetcherSession(proxy_rotator=rotator, **static)
    with pytest.raises(TypeError, match="AsyncStealthySession: use either 'proxy_rotator'"):
        AsyncStealthySession(proxy_rotator=rotator, proxy="http://p2:8080")


def test_proxy_rotator_strategy_takes_the_proxies_and_index_and_returns_the_next_index():
    rotator = ProxyRotator(
        ["http://p1", "http://p2", "http://p3"], strategy=lambda proxies, i: (proxies[-1 - i], i + 1)
    )
    assert [rotator.get_proxy() for _ in range(3)] == ["http://p3", "http://p2", "http://p1"]


@pytest.mark.parametrize("proxies", [[], "http://p1", [42], [{"host": "x"}]])
def test_proxy_rotator_rejects_bad_proxy_lists(proxies):
    with pytest.raises(TypeError, match="ProxyRotator"):
        ProxyRotator(proxies)


def test_wire_kwargs_are_plain_data():
    spec = FetcherSession(proxy_auth=("user", "pass"), cert=("c.pem", "k.pem"), impersonate=["chrome", "firefox"])
    assert spec.wire_kwargs(Shop()) == {
        "proxy_auth": ["user", "pass"],
        "cert": ["c.pem", "k.pem"],
        "impersonate": ["chrome", "firefox"],
    }


def test_http_requests_take_method_body_and_the_sessions_arguments():
    check_request_kwargs(
        "http",
        {
            "method": "POST",
            "data": {"a": "1"},
            "json": None,
            "params": {"q": "x"},
            "cookies": {"c": "1"},
            "impersonate": "chrome131_android",
            "timeout": 5,
            "headers": {"a": "b"},
            "extra_headers": {"a": "b"},
            "google_search": False,
        },
        where="Request to sid 'http'",
    )


def test_browser_requests_take_fetch_arguments_and_refuse_http_ones():
    check_request_kwargs(
        "stealth",
        {
            "solve_cloudflare": True,
            "block_webrtc": True,
            "hide_canvas": True,
            "google_search": True,
            "wait_selector": "div.loaded",
            "network_idle": True,
            "extra_headers": {"a": "b"},
            "headers": {"a": "b"},
        },
        where="Request to sid 'stealth'",
    )
    with pytest.raises(TypeError, match=r"unknown argument 'impersonate' of Request to sid 'b' \(a dynamic session\)"):
        check_request_kwargs("dynamic", {"impersonate": "chrome"}, where="Request to sid 'b'")
    with pytest.raises(TypeError, match="can only GET, not 'POST'"):
        check_request_kwargs("stealth", {"method": "POST"}, where="Request to sid 's'")
    with pytest.raises(TypeError, match="did you mean 'wait_selector'"):
        check_request_kwargs("dynamic", {"wait_selecter": "x"}, where="Request to sid 'b'")


def test_http_requests_refuse_browser_arguments():
    with pytest.raises(TypeError, match="unknown argument 'wait_selector'"):
        check_request_kwargs("http", {"wait_selector": "div"}, where="Request to sid 'http'")
