"""Spider and SessionManager keep Scrapling's attributes, defaults, hooks and session rules."""

import logging

import pytest

from shoal.fetchers import AsyncDynamicSession, AsyncStealthySession, FetcherSession
from shoal.spiders import BLOCKED_CODES, Request, Response, SessionConfigurationError, SessionManager, Spider


class Minimal(Spider):
    name = "minimal"
    start_urls = ["https://e.com/a", "https://e.com/b"]

    async def parse(self, response: Response):
        yield {"url": response.url}


def test_spider_defaults_match_scrapling():
    spider = Minimal()
    assert spider.concurrent_requests == 4
    assert spider.concurrent_requests_per_domain == 0
    assert spider.download_delay == 0.0
    assert spider.max_blocked_retries == 3
    assert (spider.robots_txt_obey, spider.development_mode, spider.autothrottle_enabled) == (False, False, False)
    assert (spider.autothrottle_start_delay, spider.autothrottle_max_delay) == (5.0, 60.0)
    assert spider.autothrottle_target_concurrency is None and spider.autothrottle_block_backoff is True
    assert (spider.fp_include_kwargs, spider.fp_keep_fragments, spider.fp_include_headers) == (False, False, False)
    assert spider.logging_level == logging.DEBUG and spider.log_file is None
    assert spider.allowed_domains == set()
    assert {401, 403, 407, 429, 444, 500, 502, 503, 504} == BLOCKED_CODES


def test_default_sessions_are_one_fetcher_session_named_default():
    manager = Minimal().session_manager
    assert manager.session_ids == ["default"]
    assert isinstance(manager.get("default"), FetcherSession)


async def test_start_requests_target_the_default_session():
    requests = [r async for r in Minimal().start_requests()]
    assert [(r.url, r.sid, r.callback) for r in requests] == [
        ("https://e.com/a", "default", None),
        ("https://e.com/b", "default", None),
    ]


async def test_start_requests_without_start_urls_is_an_error():
    class Empty(Minimal):
        name = "empty"
        start_urls = []

    with pytest.raises(RuntimeError, match="no starting point"):
        _ = [r async for r in Empty().start_requests()]


def test_missing_name_is_an_error_at_construction():
    class Nameless(Spider):
        async def parse(self, response):
            yield None

    with pytest.raises(ValueError, match="Nameless must have a name"):
        Nameless()


def test_failing_configure_sessions_is_a_session_configuration_error():
    class Broken(Minimal):
        def configure_sessions(self, manager):
            manager.add("http", FetcherSession(impersonat="chrome"))

    with pytest.raises(SessionConfigurationError, match="impersonat"):
        Broken()


def test_no_sessions_is_a_session_configuration_error():
    class NoSessions(Minimal):
        def configure_sessions(self, manager):
            pass

    with pytest.raises(SessionConfigurationError, match="did not add any sessions"):
        NoSessions()


async def test_default_hooks():
    spider = Minimal()
    response = Response("https://e.com", status=403)
    assert await spider.is_blocked(response) is True
    assert await spider.is_blocked(Response("https://e.com", status=200)) is False
    assert await spider.on_scraped_item({"a": 1}) == {"a": 1}
    request = Request("https://e.com")
    assert await spider.retry_blocked_request(request, response) is request


def test_first_session_added_is_the_default():
    manager = SessionManager().add("http", FetcherSession()).add("stealth", AsyncStealthySession(), lazy=True)
    assert manager.default_session_id == "http"
    assert manager.is_lazy("stealth") and not manager.is_lazy("http")
    assert "stealth" in manager and len(manager) == 2


def test_default_true_makes_a_later_session_the_default():
    manager = SessionManager().add("http", FetcherSession()).add("browser", AsyncDynamicSession(), default=True)
    assert manager.default_session_id == "browser"


def test_adding_a_sid_twice_is_an_error():
    manager = SessionManager().add("http", FetcherSession())
    with pytest.raises(ValueError, match="Session 'http' already registered"):
        manager.add("http", FetcherSession())


def test_a_spider_with_a_session_that_is_not_from_shoal_fetchers_fails_when_built():
    class Foreign(Minimal):
        def configure_sessions(self, manager):
            manager.add("http", object())

    with pytest.raises(SessionConfigurationError, match=r"session 'http' must be a session from shoal\.fetchers"):
        Foreign()


def test_removing_the_default_moves_it_to_the_first_remaining():
    manager = SessionManager().add("a", FetcherSession()).add("b", FetcherSession()).add("c", FetcherSession())
    manager.remove("a")
    assert manager.default_session_id == "b"
    popped = manager.pop("b")
    assert isinstance(popped, FetcherSession) and manager.session_ids == ["c"]
    with pytest.raises(KeyError, match="Session 'zz' not found"):
        manager.pop("zz")
    with pytest.raises(KeyError, match="Available: c"):
        manager.get("zz")
    manager.remove("c")
    with pytest.raises(RuntimeError, match="No sessions registered"):
        _ = manager.default_session_id


# The reference page's example spiders, with only the import lines changed.


class ReferenceMySpider(Spider):
    name = "my_spider"
    start_urls = ["https://example.com"]

    def configure_sessions(self, manager):
        manager.add("default", FetcherSession())

    async def parse(self, response: Response):
        yield {"title": response.css("title::text").get("")}


class ReferenceMultiSession(Spider):
    name = "products"
    start_urls = ["https://shop.example.com/products"]

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession())
        manager.add("stealth", AsyncStealthySession(headless=True, network_idle=True))

    async def parse(self, response: Response):
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, sid="stealth", callback=self.parse_product)

    async def parse_product(self, response: Response):
        yield {"name": response.css("h1::text").get("")}


class ReferenceSameClass(Spider):
    name = "products"
    start_urls = ["https://shop.example.com/products"]

    def configure_sessions(self, manager):
        manager.add("chrome", FetcherSession(impersonate="chrome"))
        manager.add("firefox", FetcherSession(impersonate="firefox"))

    async def parse(self, response: Response):
        yield None


class ReferenceInheritance(Spider):
    name = "products"
    start_urls = ["https://shop.example.com/products"]

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession(impersonate="chrome"))

    async def parse(self, response: Response):
        yield None


@pytest.mark.parametrize(
    "cls, kinds, default",
    [
        (ReferenceMySpider, {"default": "http"}, "default"),
        (ReferenceMultiSession, {"http": "http", "stealth": "stealth"}, "http"),
        (ReferenceSameClass, {"chrome": "http", "firefox": "http"}, "chrome"),
        (ReferenceInheritance, {"http": "http"}, "http"),
    ],
)
def test_reference_page_spiders_construct_with_validated_sessions(cls, kinds, default):
    manager = cls().session_manager
    assert {sid: manager.get(sid).kind for sid in manager.session_ids} == kinds
    assert manager.default_session_id == default
