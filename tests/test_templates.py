"""Spider templates in real crawls: CrawlSpider rules, SitemapSpider, XMLFeedSpider and CSVFeedSpider."""

import gzip
import logging

import pytest
from aiohttp import web

from shoal.demo.site import serve_app
from shoal.spiders import (
    ContentSpider,
    CrawlRule,
    CrawlSpider,
    CSVFeedSpider,
    LinkExtractor,
    Request,
    Response,
    ShopifySpider,
    SitemapSpider,
    XMLFeedSpider,
)
from shoal.spiders.templates.bodies import BodyError, parse_xml

XML = "application/xml"


def page(body: str) -> web.Response:
    return web.Response(text=f"<html><body>{body}</body></html>", content_type="text/html")


def urlset(base: str, paths: list[str], extra: str = "") -> str:
    urls = "".join(f"<url><loc>{base}{path}</loc>{extra}</url>" for path in paths)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


def catalog_app(base: list[str]) -> web.Application:
    """A catalog: home -> categories -> items -> "more" pages, with links a crawl must not take."""

    async def home(request):
        return page(
            '<nav><a href="/about">About</a></nav><div id="content">'
            '<a href="/category/1">C1</a> <a href="/category/2">C2</a>'
            '<map><area href="/category/3"></map><a href="/files/manual.pdf">manual</a>'
            '<a href="http://elsewhere.invalid/away">away</a></div>'
        )

    async def category(request):
        c = request.match_info["c"]
        items = "".join(f'<li><a href="/item/{c}-{i}">item {i}</a></li>' for i in (1, 2, 3))
        return page(f'<ul class="items">{items}</ul><a href="/category/{c}/print">print</a>')

    async def item(request):
        name = request.match_info["name"]
        return page(f'<h1>Item {name}</h1><a class="more" href="/more/{name}">more</a>')

    async def more(request):
        return page(f"<h1>More {request.match_info['name']}</h1>")

    async def robots(request):
        return web.Response(text=f"User-agent: *\nDisallow:\nSitemap: {base[0]}/sitemap_index.xml\n")

    async def sitemap_index(request):
        sitemaps = "".join(
            f"<sitemap><loc>{base[0]}/{name}</loc></sitemap>"
            for name in ("sitemap-items.xml.gz", "sitemap-news.xml", "sitemap-skipped.xml", "sitemap-bomb.xml.gz")
        )
        body = f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{sitemaps}'
        return web.Response(text=body + "</sitemapindex>", content_type=XML)

    async def items_sitemap(request):  # a .xml.gz file, served as bytes
        alternate = f'<xhtml:link rel="alternate" hreflang="de" href="{base[0]}/item/de-1"/>'
        body = urlset(base[0], ["/item/1-1", "/item/1-2"], alternate).replace(
            "<urlset ", '<urlset xmlns:xhtml="http://www.w3.org/1999/xhtml" '
        )
        return web.Response(body=gzip.compress(body.encode()), content_type="application/octet-stream")

    async def news_sitemap(request):  # gzip'd in transit (Content-Encoding)
        entries = "".join(
            f"<url><loc>{base[0]}/more/news-{n}</loc><lastmod>{year}-01-01</lastmod></url>"
            for n, year in ((1, 2019), (2, 2025))
        )
        entries += f"<url><loc>{base[0]}/more/news-&entity;</loc></url><url><loc>{base[0]}/about</loc></url>"
        body = (
            '<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY entity "EXPANDED">]>'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'
        )
        return web.Response(
            body=gzip.compress(body.encode()), headers={"Content-Encoding": "gzip", "Content-Type": XML}
        )

    async def skipped_sitemap(request):
        return web.Response(text=urlset(base[0], ["/item/9-9"]), content_type=XML)

    async def bomb(request):
        return web.Response(body=BOMB, content_type="application/gzip")

    app = web.Application()
    app.add_routes(
        [
            web.get("/", home),
            web.get("/category/{c:\\d+}", category),
            web.get("/category/{c:\\d+}/print", more),
            web.get("/item/{name}", item),
            web.get("/more/{name}", more),
            web.get("/about", more),
            web.get("/robots.txt", robots),
            web.get("/sitemap_index.xml", sitemap_index),
            web.get("/sitemap-items.xml.gz", items_sitemap),
            web.get("/sitemap-news.xml", news_sitemap),
            web.get("/sitemap-skipped.xml", skipped_sitemap),
            web.get("/sitemap-bomb.xml.gz", bomb),
        ]
    )
    return app


BOMB = gzip.compress(b"<" * (65 * 2**20), compresslevel=9)  # 65 MB of XML-ish bytes, 64 KB on the wire


@pytest.fixture(scope="module")
def catalog():
    base: list[str] = []
    url, stop = serve_app(catalog_app(base))
    base.append(url)
    yield url
    stop()


def run(spider, redis_url, **options):
    return spider.start(redis_url=redis_url, **options)


# -- LinkExtractor ------------------------------------------------------------------------------------


def html_response(body: str, url: str = "http://127.0.0.1:1/dir/page") -> Response:
    return Response(url, body.encode(), headers={"Content-Type": "text/html; charset=utf-8"})


def test_link_extractor_reads_a_and_area_hrefs_absolute_canonical_and_once():
    response = html_response(
        '<a href="b?z=1&a=2">1</a><a href=" /c#top ">2</a><map><area href="/c"></map>'
        '<a href="mailto:x@y">3</a><a href="javascript:void(0)">4</a><img src="/i.png"><a href="/doc.PDF">5</a>'
    )
    assert LinkExtractor().extract(response) == ["http://127.0.0.1:1/dir/b?a=2&z=1", "http://127.0.0.1:1/c"]
    raw = LinkExtractor(canonicalize=False, unique=False, deny_extensions=())
    assert raw.extract(response) == [
        "http://127.0.0.1:1/dir/b?z=1&a=2",
        "http://127.0.0.1:1/c#top",
        "http://127.0.0.1:1/c",
        "http://127.0.0.1:1/doc.PDF",
    ]
    assert LinkExtractor(tags="img", attrs="src", deny_extensions=()).extract(response) == ["http://127.0.0.1:1/i.png"]


def test_link_extractor_filters_by_pattern_domain_and_region():
    response = html_response(
        '<div id="main"><a href="/keep/1">a</a><a href="/keep/2/print">b</a>'
        '<a href="http://shop.example.com/keep/3">c</a><a href="http://ads.example.com/keep/4">d</a></div>'
        '<footer><a href="/keep/5">e</a></footer>'
    )
    links = LinkExtractor(allow=r"/keep/", deny=[r"/print$"], deny_domains="ads.example.com")
    assert [url.rsplit("/", 1)[1] for url in links.extract(response)] == ["1", "3", "5"]
    assert LinkExtractor(allow_domains=["example.com"]).extract(response) == [
        "http://shop.example.com/keep/3",
        "http://ads.example.com/keep/4",
    ]
    assert LinkExtractor(restrict_css="footer").extract(response) == ["http://127.0.0.1:1/keep/5"]
    assert LinkExtractor(restrict_xpaths="//div[@id='main']/a[1]").extract(response) == ["http://127.0.0.1:1/keep/1"]
    assert LinkExtractor(restrict_css="aside").extract(response) == []
    assert LinkExtractor(process=lambda url: url.replace("/keep/", "/kept/") if url.endswith("/1") else None).extract(
        response
    ) == ["http://127.0.0.1:1/kept/1"]


def test_link_extractor_rejects_bad_tag_names():
    with pytest.raises(ValueError, match=r"LinkExtractor tags must be element or attribute names, got 'a\|b'"):
        LinkExtractor(tags=["a|b"])


# -- CrawlSpider --------------------------------------------------------------------------------------


class ShopCrawler(CrawlSpider):
    """The demo shop by rules: listing pages followed, product pages parsed (and their related links followed)."""

    name = "shop-rules"
    concurrent_requests = 16
    logging_level = 30

    def __init__(self, base: str):
        self.start_urls = [f"{base}/products"]
        super().__init__()

    def rules(self):
        return [
            CrawlRule(LinkExtractor(allow=r"/products\?page=\d+$")),
            CrawlRule(LinkExtractor(allow=r"/product/\d+$"), callback=self.parse_product, follow=True),
        ]

    async def parse_product(self, response: Response):
        yield {"name": response.css("h1::text").get(""), "price": response.css(".price::text").get("")}


def test_crawl_spider_finds_every_product_once_across_two_workers(shop, redis_url):
    result = run(ShopCrawler(shop.url), redis_url, workers={"default": 2})
    expected = shop.site.expected_items()
    assert sorted(map(str, result.items)) == sorted(map(str, expected))
    # every listing page and product once, although related links point at products many times over
    assert result.stats.requests_count == shop.site.pages + len(expected)
    # (How two workers share the load is shown in test_crawl; this crawl can end before a worker's
    # once-a-second look for new crawls, so one worker may fetch it all.)


class CatalogCrawler(CrawlSpider):
    name = "catalog-rules"
    allowed_domains = {"127.0.0.1"}
    logging_level = 30
    rules = (
        CrawlRule(LinkExtractor(allow=r"/category/\d+$", restrict_css="#content", deny_extensions=["pdf"])),
        CrawlRule(
            LinkExtractor(allow=r"/item/", deny=r"/item/2-"),
            callback="parse_item",
            process_request="skip_third",
            cb_kwargs={"kind": "item"},
        ),
        CrawlRule(LinkExtractor(allow=r"/more/"), callback="parse_item", cb_kwargs={"kind": "more"}),
        CrawlRule(LinkExtractor(allow_domains="elsewhere.invalid")),
    )

    def __init__(self, base: str, follow_items: bool):
        self.start_urls = [f"{base}/"]
        if follow_items:
            self.rules = tuple(
                CrawlRule(
                    r.link_extractor, r.callback, r.priority, r.process_request, cb_kwargs=r.cb_kwargs, follow=True
                )
                if r.callback
                else r
                for r in CatalogCrawler.rules
            )
        super().__init__()

    def skip_third(self, request: Request, response: Response) -> Request | None:
        request.meta["found_on"] = response.url.rsplit("/", 1)[1]
        return None if request.url.endswith("-3") else request

    async def parse_item(self, response: Response, kind: str):
        yield {"kind": kind, "h1": response.css("h1::text").get(), "found_on": response.meta.get("found_on")}


@pytest.mark.parametrize("follow_items", [False, True])
def test_crawl_rules_pick_links_by_pattern_and_region_and_follow_only_when_told(catalog, redis_url, follow_items):
    result = run(CatalogCrawler(catalog, follow_items), redis_url)
    items = sorted((item["kind"], item["h1"], item["found_on"]) for item in result.items)
    expected = [("item", f"Item {c}-{i}", str(c)) for c in (1, 3) for i in (1, 2)]
    if follow_items:  # the item rule has a callback, so it follows only with follow=True
        expected += [("more", f"More {c}-{i}", str(c)) for c in (1, 3) for i in (1, 2)]
    assert items == sorted(expected)
    assert result.stats.offsite_requests_count == 1  # the rule's request met allowed_domains like any other
    # home, categories 1-3 (area tag; not the nav's /about, the pdf or /print), the items (and their more pages)
    assert result.stats.requests_count == 1 + 3 + 4 + (4 if follow_items else 0)


# -- SitemapSpider ------------------------------------------------------------------------------------


class Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class CatalogSitemap(SitemapSpider):
    """Scrapy's style: sitemap_rules, sitemap_follow regexes, sitemap_filter."""

    name = "catalog-sitemap"
    logging_level = 30
    sitemap_rules = [(r"/item/", "parse_item"), (r"/more/news-\d", "parse_news")]
    sitemap_follow = [r"sitemap-(items|news|bomb)"]
    sitemap_alternate_links = True

    def __init__(self, base: str):
        self.sitemap_urls = [f"{base}/robots.txt"]
        super().__init__()

    def sitemap_filter(self, entries):
        for entry in entries:
            if entry.get("lastmod", "2025") >= "2020":
                yield entry

    async def parse_item(self, response: Response):
        yield {"item": response.css("h1::text").get()}

    async def parse_news(self, response: Response):
        yield {"news": response.css("h1::text").get()}


def test_sitemap_spider_follows_robots_index_and_gzip_sitemaps_through_its_rules(catalog, redis_url):
    spider = CatalogSitemap(catalog)
    warnings = Warnings()
    spider.logger.addHandler(warnings)
    result = run(spider, redis_url)
    assert sorted(map(str, result.items)) == sorted(
        map(str, [{"item": "Item 1-1"}, {"item": "Item 1-2"}, {"item": "Item de-1"}, {"news": "More news-2"}])
    )
    fetched = result.stats.requests_count
    # robots, index, items.xml.gz, news, bomb, 3 items, 1 news: no skipped sitemap, no /about (no rule), no 2019 news
    assert fetched == 5 + 3 + 1
    assert warnings.messages == [
        f"Ignoring sitemap {catalog}/sitemap-bomb.xml.gz: gzip body decompresses to more than {64 * 2**20} bytes"
    ]


class RulesSitemap(SitemapSpider):
    """Scrapling's style: rules() with CrawlRules, sitemap_follow as a LinkExtractor; unmatched URLs dropped."""

    name = "catalog-sitemap-rules"
    logging_level = 40

    def __init__(self, base: str):
        self.sitemap_urls = [f"{base}/sitemap_index.xml"]
        self.sitemap_follow = LinkExtractor(allow=r"sitemap-news")
        super().__init__()

    def rules(self):
        return [CrawlRule(LinkExtractor(allow=r"/more/"), callback=self.parse_more, priority=5)]

    async def parse_more(self, response: Response):
        yield {"url": response.url.rsplit("/", 1)[1], "priority": response.request.priority}


def test_sitemap_spider_with_scrapling_rules_keeps_entities_unexpanded(catalog, redis_url):
    result = run(RulesSitemap(catalog), redis_url)
    # news-&entity; was fetched as news-: the sitemap's <!ENTITY> was not expanded
    assert sorted(item["url"] for item in result.items) == ["news-", "news-1", "news-2"]
    assert {item["priority"] for item in result.items} == {5}
    assert result.stats.requests_count == 2 + 3  # index and news sitemap (sitemap_follow), three pages


def test_sitemap_xml_is_parsed_without_expanding_entities():
    laughs = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 9))
    bomb = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{laughs}]><r>&l8;</r>'.encode()
    try:
        text = "".join(parse_xml(bomb).itertext())
    except BodyError as e:  # libxml2 may refuse it outright
        text = str(e)
    assert "lol" not in text
    external = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    assert parse_xml(external).text is None


# -- XMLFeedSpider and CSVFeedSpider ------------------------------------------------------------------

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" xmlns:atom="http://www.w3.org/2005/Atom">
<channel><title>Feed</title><atom:link href="http://x/feed" rel="self"/>
<item><title>First &amp; best</title><link>/item/1-1</link><media:thumbnail url="/t1.png"/></item>
<item><title>Second</title><link>/item/1-2</link><media:thumbnail url="/t2.png"/></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom</title>
<entry><title>Entry A</title><link href="/item/a"/></entry><entry><title>Entry B</title><link href="/item/b"/></entry>
</feed>"""

CSV_FEED = "1;'Widget; large';9.50\n2;Gadget;3\n\nbroken row\n3;'Thing ''quoted''';1.25\n"


def feed_app() -> web.Application:
    async def rss(request):
        return web.Response(text=RSS, content_type="application/rss+xml")

    async def atom(request):
        return web.Response(body=gzip.compress(ATOM.encode()), content_type="application/gzip")

    async def csv_feed(request):
        body = CSV_FEED.encode()
        if request.path.endswith(".gz"):
            return web.Response(body=gzip.compress(body), content_type="application/octet-stream")
        return web.Response(body=body, content_type="text/csv")

    async def item(request):
        return page(f"<h1>Item {request.match_info['name']}</h1>")

    app = web.Application()
    app.add_routes(
        [
            web.get("/feed.rss", rss),
            web.get("/feed.atom.gz", atom),
            web.get("/prices.csv", csv_feed),
            web.get("/prices.csv.gz", csv_feed),
            web.get("/item/{name}", item),
        ]
    )
    return app


@pytest.fixture(scope="module")
def feeds():
    url, stop = serve_app(feed_app())
    yield url
    stop()


class RssSpider(XMLFeedSpider):
    name = "rss"
    logging_level = 30

    def __init__(self, base: str, itertag: str = "item"):
        self.start_urls = [f"{base}/feed.rss"]
        self.itertag = itertag
        self.namespaces = (("media", "http://search.yahoo.com/mrss/"),)
        super().__init__()

    async def parse_node(self, response: Response, node):
        if node.tag == "thumbnail":
            yield {"thumbnail": node.get("url")}
            return
        yield {"title": node.findtext("title")}
        yield response.follow(node.findtext("link"), callback=self.parse_page)

    async def parse_page(self, response: Response):
        yield {"page": response.css("h1::text").get()}


class AtomSpider(XMLFeedSpider):
    name = "atom"
    logging_level = 30
    itertag = "entry"

    def __init__(self, base: str):
        self.start_urls = [f"{base}/feed.atom.gz"]
        super().__init__()

    async def parse_node(self, response: Response, node):
        yield {"title": node.findtext("title"), "link": node.find("link").get("href")}


def test_xml_feed_spider_yields_per_node_and_follows_links(feeds, redis_url):
    result = run(RssSpider(feeds), redis_url)
    assert sorted(map(str, result.items)) == sorted(
        map(str, [{"title": "First & best"}, {"title": "Second"}, {"page": "Item 1-1"}, {"page": "Item 1-2"}])
    )
    thumbnails = run(RssSpider(feeds, itertag="media:thumbnail"), redis_url)
    assert sorted(item["thumbnail"] for item in thumbnails.items) == ["/t1.png", "/t2.png"]
    atom = run(AtomSpider(feeds), redis_url)  # gzip'd, with a default namespace
    assert atom.items == [{"title": "Entry A", "link": "/item/a"}, {"title": "Entry B", "link": "/item/b"}]


class PriceSpider(CSVFeedSpider):
    name = "prices"
    logging_level = 40
    delimiter = ";"
    quotechar = "'"
    headers = ["id", "name", "price"]

    def __init__(self, base: str):
        self.start_urls = [f"{base}/prices.csv", f"{base}/prices.csv.gz"]
        super().__init__()

    async def parse_row(self, response: Response, row):
        yield {"feed": response.url.rsplit("/", 1)[1], **row}


def test_csv_feed_spider_yields_per_row_with_its_dialect_and_skips_broken_rows(feeds, redis_url):
    result = run(PriceSpider(feeds), redis_url)
    rows = [
        {"id": "1", "name": "Widget; large", "price": "9.50"},
        {"id": "2", "name": "Gadget", "price": "3"},
        {"id": "3", "name": "Thing 'quoted'", "price": "1.25"},
    ]
    expected = [{"feed": feed, **row} for feed in ("prices.csv", "prices.csv.gz") for row in rows]
    assert sorted(map(str, result.items)) == sorted(map(str, expected))


# -- what rules and feeds hand the spider ---------------------------------------------------------------


class InspectedRules(CrawlSpider):
    name = "inspected-rules"
    start_urls = ["http://127.0.0.1:1/"]
    rules = (
        CrawlRule(LinkExtractor(allow=r"/item/"), callback="parse_item", process_request="inspect"),
        CrawlRule(LinkExtractor(allow=r"/category/"), process_request="inspect"),
    )

    def __init__(self):
        self.inspected: list[tuple] = []
        super().__init__()

    def inspect(self, request: Request, response: Response) -> Request:
        self.inspected.append((request.url.rsplit("/", 2)[1], request.callback, dict(request.meta)))
        return request

    async def parse_item(self, response: Response):
        yield {"item": response.url}


async def test_rule_requests_carry_the_rules_own_callback_and_the_pages_meta():
    spider = InspectedRules()
    url = "http://127.0.0.1:1/dir/page"
    response = Response(url, b'<a href="/item/1">i</a><a href="/category/2">c</a>', meta={"depth": 1})
    response.request = Request(url, meta={"depth": 1})
    requests = [request async for request in spider.parse(response)]
    # without a callback, a rule's request inherits the page's (None: parse), as response.follow() does
    expected = [("item", spider.parse_item, {"depth": 1}), ("category", None, {"depth": 1})]
    assert [(r.url.rsplit("/", 2)[1], r.callback, r.meta) for r in requests] == expected
    assert spider.inspected == expected  # process_request sees the same


class MixedRules(CrawlSpider):
    name = "mixed-rules"
    start_urls = ["http://127.0.0.1:1/"]
    rules = (
        CrawlRule(LinkExtractor(allow=r"/item/"), callback="parse_item", follow=True),  # Scrapy's follow
        CrawlRule(LinkExtractor(allow=r"/category/")),
    )

    async def parse_item(self, response: Response):
        yield {"item": response.url}


async def test_a_plain_rules_request_from_the_page_of_a_following_rule_goes_to_parse_without_the_rule_index():
    spider = MixedRules()
    url = "http://127.0.0.1:1/item/1"
    response = Response(url, b'<a href="/category/2">c</a>', meta={"rule": 0, "depth": 2})
    response.request = Request(url, callback=spider.parse_rule, meta={"rule": 0, "depth": 2})
    results = [result async for result in spider.parse_rule(response)]
    assert results[0] == {"item": url}
    assert [(r.url, r.callback, r.meta) for r in results[1:]] == [
        ("http://127.0.0.1:1/category/2", spider.parse, {"depth": 2})
    ]


class InspectedSitemap(SitemapSpider):
    name = "inspected-sitemap"
    sitemap_urls = ["http://127.0.0.1:1/sitemap.xml"]

    def rules(self):
        return [CrawlRule(LinkExtractor(allow=r"/item/"), callback=self.parse_item), CrawlRule(LinkExtractor())]

    async def parse_item(self, response: Response):
        yield {"item": response.url}


async def test_sitemap_rule_requests_carry_the_rules_callback_else_parse_and_the_sitemaps_meta():
    spider = InspectedSitemap()
    base = "http://127.0.0.1:1"
    response = Response(f"{base}/sitemap.xml", urlset(base, ["/item/1", "/about"]).encode(), meta={"from": "map"})
    response.request = Request(response.url, callback=spider._parse_sitemap, meta={"from": "map"})
    requests = [request async for request in spider._parse_sitemap(response)]
    assert [(r.url, r.callback, r.meta) for r in requests] == [
        (f"{base}/item/1", spider.parse_item, {"from": "map"}),
        (f"{base}/about", spider.parse, {"from": "map"}),
    ]


async def test_a_sitemap_spider_without_sitemap_urls_says_so_as_scrapling_does():
    class NoMaps(SitemapSpider):
        name = "no-maps"

    with pytest.raises(RuntimeError, match="needs `sitemap_urls`"):
        _ = [request async for request in NoMaps().start_requests()]


async def test_a_malformed_xml_feed_logs_a_warning_and_yields_nothing():
    spider = RssSpider("http://127.0.0.1:1")
    warnings = Warnings()
    spider.logger.addHandler(warnings)
    response = Response("http://127.0.0.1:1/feed.rss", b"this is <<< not xml", headers={"Content-Type": XML})
    assert [result async for result in spider.parse(response)] == []
    assert warnings.messages == [
        "Failed to parse XML feed from http://127.0.0.1:1/feed.rss: not well-formed XML: "
        "Start tag expected, '<' not found, line 1, column 1 (<string>, line 1)"
    ]


# -- ShopifySpider and ContentSpider --------------------------------------------------------------------


def shopify_app() -> web.Application:
    """A Shopify store's JSON API: two collections with products (a variant in both), one empty."""
    collections = [
        {"handle": "lamps", "products_count": 1},
        {"handle": "best-sellers", "products_count": 2},
        {"handle": "empty", "products_count": 0},
    ]
    lamp = {
        "title": "Lamp",
        "handle": "lamp",
        "vendor": "Acme",
        "body_html": "<p>A <b>bright</b> lamp</p>",
        "images": [{"src": "https://cdn.test/lamp.jpg"}],
        "variants": [{"id": 11, "title": "Default Title", "price": "10.00", "available": True, "sku": "L1"}],
    }
    desk = {
        "title": "Desk", "handle": "desk", "vendor": "Acme", "body_html": None, "images": [],
        "variants": [
            {"id": 21, "title": "Oak", "price": "99.00", "available": False, "compare_at_price": "120.00"},
            {"id": 22, "title": "Pine", "price": "89.00", "available": True, "compare_at_price": "0.00"},
        ],
    }  # fmt: skip
    products = {"lamps": [lamp], "best-sellers": [lamp, desk]}

    async def collections_page(request):
        page = int(request.query["page"])
        return web.json_response({"collections": collections if page == 1 else []})

    async def products_page(request):
        page = int(request.query["page"])
        return web.json_response({"products": products[request.match_info["handle"]] if page == 1 else []})

    app = web.Application()
    app.router.add_get("/collections.json", collections_page)
    app.router.add_get("/collections/{handle}/products.json", products_page)
    return app


class LocalShopify(ShopifySpider):
    name = "local-shopify"
    logging_level = 30
    collections_url = "http://{website}/collections.json?page={page}&limit=250"
    products_url = "http://{website}/collections/{handle}/products.json?page={page}&limit=250"

    def __init__(self, base: str):
        self.target_website = base
        super().__init__()


def test_shopify_spider_yields_each_variant_of_the_store_once(redis_url):
    url, stop = serve_app(shopify_app())
    try:
        result = run(LocalShopify(url), redis_url)
    finally:
        stop()
    host = url.split("://")[1]
    items = sorted(result.items, key=lambda item: item["identifier"])
    assert [(item["name"], item["category"], item["stock"], item["old_price"]) for item in items] == [
        ("Lamp", "Lamps", None, ""),
        ("Desk - Oak", "Best Sellers", 0, "120.00"),
        ("Desk - Pine", "Best Sellers", None, ""),
    ]
    assert items[0]["description"] == "A bright lamp" and items[0]["sku"] == "L1"
    assert items[0]["url"] == f"https://{host}/collections/lamps/products/lamp"
    # collections pages 1-2, lamps pages 1-2, best-sellers pages 1-2; never the empty collection
    assert result.stats.requests_count == 6


class CatalogAsMarkdown(ContentSpider):
    name = "catalog-markdown"
    allowed_domains = {"127.0.0.1"}
    logging_level = 30

    def rules(self):
        return [CrawlRule(LinkExtractor(allow=r"/(category/\d+|item/1-\d)$", restrict_css="#content, ul"))]


def test_content_spider_turns_each_page_into_markdown_items_and_files(catalog, redis_url, tmp_path):
    spider = CatalogAsMarkdown()
    spider.start_urls = [f"{catalog}/"]
    spider.output_dir = str(tmp_path / "pages")
    result = run(spider, redis_url)
    pages = {item["url"].split("/", 3)[3]: item for item in result.items}
    assert sorted(pages) == ["", "category/1", "category/2", "category/3", "item/1-1", "item/1-2", "item/1-3"]
    assert pages["item/1-2"]["markdown"].strip().startswith("Item 1-2\n=")
    files = sorted(path.name for path in (tmp_path / "pages").iterdir())
    assert len(files) == 7 and "127.0.0.1-{}-item-1-2.md".format(catalog.rsplit(":", 1)[1]) in files


def test_content_spider_needs_allowed_domains():
    class Unbounded(ContentSpider):
        name = "unbounded"

    with pytest.raises(ValueError, match="must set `allowed_domains`"):
        Unbounded()
