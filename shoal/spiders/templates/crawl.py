"""CrawlSpider: follow the links that declarative rules pick, and send each to the rule's callback.

Scrapling's API: ``CrawlRule(link_extractor, callback, priority, process_request)`` and a ``rules()``
method. As in Scrapling, a rule's request is ``response.follow(url, callback=rule.callback)``: it carries
the rule's own callback (without one it inherits the page's, so pages found from ``parse()`` go to
``parse()``, which applies the rules again) and the page's meta, and nothing else.
Scrapy's Rule semantics on top: callbacks and ``process_request`` by method name, a ``rules`` sequence
attribute, a link taken by the first rule that extracts it, and ``cb_kwargs`` and ``follow`` (True by
default only for a rule without a callback). A rule that uses these last two needs its pages back: its
requests go to ``parse_rule``, which finds the rule by its index in ``meta["rule"]`` (as in Scrapy).

Rules run in the coordinator, in the callback of each response. Their requests go through the ordinary
schedule path, so deduplication, ``allowed_domains`` and priorities hold across every worker.
"""

from collections.abc import AsyncGenerator, AsyncIterable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from shoal.common.request import Request
from shoal.common.response import Response
from shoal.spiders.links import LinkExtractor
from shoal.spiders.spider import Spider

Callback = Callable[..., AsyncIterable[Any]]
#: Where a rule's index travels with its requests (Scrapy's key).
RULE_META_KEY = "rule"


@dataclass
class CrawlRule:
    """Which links to follow (``link_extractor``) and what to do with their pages.

    ``callback``: a spider method, or its name, that parses the page (an async generator, like any
    callback); without one, the page goes to ``parse()``. ``priority``: the requests' priority.
    ``process_request``: a spider method (or name) called as ``(request, response)`` that returns the
    request to schedule, or None to drop it. ``cb_kwargs``: keyword arguments for the callback.
    ``follow``: also apply the rules to the pages this rule finds (default: only when no callback).
    """

    link_extractor: LinkExtractor = field(default_factory=LinkExtractor)
    callback: Callback | str | None = None
    priority: int | None = None
    process_request: Callable[[Request, Response], Request | None] | str | None = None
    _: KW_ONLY
    cb_kwargs: dict[str, Any] = field(default_factory=dict)
    follow: bool | None = None

    @property
    def follows(self) -> bool:
        """Whether pages found by this rule have the rules applied to them too."""
        return self.callback is None if self.follow is None else self.follow

    @property
    def dispatched(self) -> bool:
        """Whether the rule uses Scrapy's ``cb_kwargs``, or a ``follow`` other than Scrapling's (rules
        applied exactly to the pages of a rule without a callback): then its pages go to ``parse_rule``."""
        return bool(self.cb_kwargs) or self.follows != (self.callback is None)


def _resolve(spider: Spider, value: Any, what: str) -> Any:
    if value is None or callable(value):
        return value
    method = getattr(spider, value, None) if isinstance(value, str) else None
    if not callable(method):
        raise TypeError(f"{what} {value!r} is not a method of {type(spider).__name__}")
    return method


async def _results(output: Any, what: str) -> AsyncGenerator[Any, None]:
    if not isinstance(output, AsyncIterable):
        raise TypeError(f"{what} must be an async generator (async def with yield), got {type(output).__name__}")
    async for result in output:
        yield result


class RuleDispatch:
    """What CrawlSpider and SitemapSpider share: their rules, and the requests and callbacks of a rule."""

    def rules(self) -> Sequence[CrawlRule]:
        """Override to return the spider's rules (Scrapling); or set ``rules = (...)`` (Scrapy)."""
        return ()

    def crawl_rules(self) -> list[CrawlRule]:
        """The rules, checked and with callbacks given by name resolved (read once per spider)."""
        compiled = self.__dict__.get("_compiled_rules")
        if compiled is None:
            compiled = [self._compile_rule(n, rule) for n, rule in enumerate(self.declared_rules())]
            self.__dict__["_compiled_rules"] = compiled
        return compiled

    def declared_rules(self) -> Sequence[CrawlRule]:
        """The rules as the spider declares them: ``rules()``, or a ``rules`` sequence."""
        return (self.rules() if callable(self.rules) else self.rules) or ()

    def _compile_rule(self, n: int, rule: Any) -> CrawlRule:
        if not isinstance(rule, CrawlRule):
            raise TypeError(f"rule {n} of {type(self).__name__} is a {type(rule).__name__}, not a CrawlRule")
        spider: Any = self
        return CrawlRule(
            rule.link_extractor,
            _resolve(spider, rule.callback, f"rule {n} callback"),
            rule.priority,
            _resolve(spider, rule.process_request, f"rule {n} process_request"),
            cb_kwargs=dict(rule.cb_kwargs),
            follow=rule.follows,
        )

    def rule_callback(self, rule: CrawlRule) -> Callback | None:
        """The callback of a rule's requests: its own (CrawlSpider: None inherits the page's callback)."""
        return rule.callback  # type: ignore[return-value]

    def rule_request(self, response: Response, url: str, n: int) -> Request | None:
        """The request for ``url`` found by rule ``n`` in ``response`` (None when process_request drops it)."""
        rule = self.crawl_rules()[n]
        spider: Any = self
        if rule.dispatched:
            request = response.follow(url, callback=spider.parse_rule, meta={RULE_META_KEY: n})
        else:
            request = response.follow(url, callback=self.rule_callback(rule))
            if request.callback == spider.parse_rule:  # inherited from a page of a rule that needed it
                request.callback = spider.parse
                request.meta.pop(RULE_META_KEY, None)
        if rule.priority is not None:
            request.priority = rule.priority
        if rule.process_request is not None:
            request = rule.process_request(request, response)
            if request is not None and not isinstance(request, Request):
                raise TypeError(f"rule {n} process_request must return a Request or None, got {request!r}")
        return request

    async def follow_rules(self, response: Response) -> AsyncGenerator[Request, None]:
        """A request per link the rules extract from ``response``; a link is taken by the first rule
        that extracts it."""
        taken: set[str] = set()
        for n, rule in enumerate(self.crawl_rules()):
            for url in rule.link_extractor.extract(response):
                if url in taken:
                    continue
                taken.add(url)
                if (request := self.rule_request(response, url, n)) is not None:
                    yield request

    async def parse_rule(self, response: Response) -> AsyncGenerator[Any, None]:
        """The callback of the requests of rules with ``cb_kwargs`` or ``follow``: the rule's callback, then
        the rules if it follows."""
        n = response.meta.get(RULE_META_KEY)
        rules = self.crawl_rules()
        if not isinstance(n, int) or not 0 <= n < len(rules):
            raise LookupError(f"{response} came from rule {n!r}, but {type(self).__name__} has {len(rules)} rules")
        rule = rules[n]
        spider: Any = self
        if rule.callback is None:
            if rule.follows:  # Scrapling: a page found by a rule without a callback goes to parse()
                async for result in _results(spider.parse(response), "parse()"):
                    yield result
            return
        async for result in _results(rule.callback(response, **rule.cb_kwargs), f"rule {n} callback"):
            yield result
        if rule.follows:
            async for request in self.follow_rules(response):
                yield request


class CrawlSpider(RuleDispatch, Spider):
    """Follows links by rules: ``parse()`` applies every rule to the start pages (and to the pages
    of rules without a callback). Override ``parse`` and call ``super().parse(response)`` to add your own
    output to those pages."""

    async def parse(self, response: Response) -> AsyncGenerator[Any, None]:
        async for request in self.follow_rules(response):
            yield request
