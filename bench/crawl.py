"""One crawl of the demo shop by one contender, in this process (bench/run.py runs it in a child process).

    python bench/crawl.py {shoal,scrapling,bare} URL [--concurrency 64] [--one-page]

Contenders: shoal's ``Spider().start()`` (its coordinator is this process; its workers and redis-server are
children), Scrapling's ``Spider().start()``, and the bare loop: asyncio tasks sharing one curl_cffi
AsyncSession, lxml with compiled XPath, a set of seen URLs, and no framework. All three follow the same links
and take the same two fields. ``--one-page``: URL is a product page whose links all lead back to it (the
1-product shop's /product/1), so the crawl is that one page.

Prints one JSON line: pages fetched, items, a digest of the sorted items, the wall time of the crawl from
building the spider to its result (imports excluded), and the CPU seconds each process spent during the
crawl proper (from ``on_start`` to ``on_close``; the bare loop: its whole loop).
"""

import argparse
import asyncio
import hashlib
import json
import time
from typing import Any
from urllib.parse import urljoin

import psutil

#: The shop spider's callbacks, as a str.format template (bench/browsers.py and bench/load.py use them too).
CALLBACKS = """
    async def parse(self, response):
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, callback=self.parse_product)
        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page)

    async def parse_product(self, response):
        for link in response.css("a.related::attr(href)").getall():
            yield response.follow(link, callback=self.parse_product)
        yield {{"name": response.css("h1::text").get(""), "price": response.css(".price::text").get("")}}
"""


def digest(items: list[dict[str, Any]]) -> str:
    """A digest of a list of items that does not depend on their order."""
    lines = sorted(json.dumps(item, sort_keys=True) for item in items)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def role(process: psutil.Process, me: psutil.Process) -> str:
    """What a process of a crawl is: the crawl's own process, a worker, redis-server, or its name."""
    if process.pid == me.pid:
        return "crawl process"
    command = " ".join(process.cmdline())
    return next((name for name in ("worker", "redis-server") if name in command), process.name())


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) so far of this process and each of its descendants, with their role."""
    me = psutil.Process()
    found = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            with process.oneshot():
                times = process.cpu_times()
                found[process.pid] = (role(process, me), times.user + times.system)
        except psutil.Error:
            continue
    return found


class CrawlWindow:
    """CPU of every process between the start and the end of the crawl proper, and those two moments (Unix
    times, to line them up with other records)."""

    def __init__(self) -> None:
        self.started: dict[int, tuple[str, float]] = {}
        self.ended: dict[int, tuple[str, float]] = {}
        self.at = (0.0, 0.0)

    def start(self) -> None:
        self.started, self.at = cpu_by_process(), (time.time(), 0.0)

    def end(self) -> None:
        self.ended, self.at = cpu_by_process(), (self.at[0], time.time())

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds by role within the window (several processes of one role add up)."""
        spent: dict[str, float] = {}
        for pid, (name, seconds) in self.ended.items():
            spent[name] = spent.get(name, 0.0) + seconds - self.started.get(pid, (name, 0.0))[1]
        return {name: round(seconds, 4) for name, seconds in sorted(spent.items())}


def spider_class(tool: str, start_url: str, concurrency: int, one_page: bool, window: CrawlWindow) -> type:
    """The shop spider on ``tool``'s Spider class, with hooks that mark the crawl window."""
    if tool == "shoal":
        from shoal.spiders import Spider
    else:
        from scrapling.spiders import Spider
    namespace: dict[str, Any] = {}
    exec("class Callbacks:\n" + CALLBACKS.format(), namespace)  # the one text of the callbacks, shared

    class ShopSpider(namespace["Callbacks"], Spider):
        name = "bench"
        start_urls = [start_url]
        concurrent_requests = concurrency
        logging_level = 40

        async def on_start(self, resuming: bool = False) -> None:
            window.start()

        async def on_close(self) -> None:
            window.end()

    if one_page:
        ShopSpider.parse = ShopSpider.parse_product
    return ShopSpider


def crawl_spider(tool: str, start_url: str, concurrency: int, one_page: bool) -> dict[str, Any]:
    window = CrawlWindow()
    spider = spider_class(tool, start_url, concurrency, one_page, window)
    called, started = time.time(), time.perf_counter()
    result = spider().start()
    elapsed, returned = time.perf_counter() - started, time.time()
    times = {"called": called, "on_start": window.at[0], "on_close": window.at[1], "returned": returned}
    return {**report(result.stats.requests_count, list(result.items), elapsed, window), "at": times}


# -- the bare loop ---------------------------------------------------------------------------------------


def bare_crawl(start_url: str, concurrency: int, one_page: bool) -> dict[str, Any]:
    import uvloop  # the event loop shoal's start() uses
    from cssselect import GenericTranslator
    from curl_cffi.requests import AsyncSession
    from lxml import etree

    def xpath(css: str) -> etree.XPath:
        return etree.XPath(GenericTranslator().css_to_xpath(css))

    product_links, next_link = xpath("a.product"), xpath("a.next")
    related_links, name, price = xpath("a.related"), xpath("h1"), xpath(".price")
    parser = etree.HTMLParser()
    window = CrawlWindow()
    items: list[dict[str, str]] = []
    pages = 0

    def first_text(elements: list) -> str:
        return (elements[0].text or "") if elements else ""

    def listing(tree: Any) -> list[tuple[str, Any]]:
        found = [(a.get("href"), product) for a in product_links(tree)]
        return found + [(a.get("href"), listing) for a in next_link(tree)[:1]]

    def product(tree: Any) -> list[tuple[str, Any]]:
        items.append({"name": first_text(name(tree)), "price": first_text(price(tree))})
        return [(a.get("href"), product) for a in related_links(tree)]

    async def crawl() -> None:
        nonlocal pages
        window.start()
        seen = {start_url}
        queue: asyncio.Queue = asyncio.Queue()
        queue.put_nowait((start_url, product if one_page else listing))
        async with AsyncSession(max_clients=concurrency, impersonate="chrome") as session:

            async def fetcher() -> None:
                nonlocal pages
                while True:
                    url, callback = await queue.get()
                    try:
                        response = await session.get(url)
                        pages += 1
                        for link, follow in callback(etree.fromstring(response.content, parser)):
                            absolute = urljoin(response.url, link)
                            if absolute not in seen:
                                seen.add(absolute)
                                queue.put_nowait((absolute, follow))
                    finally:
                        queue.task_done()

            tasks = [asyncio.create_task(fetcher()) for _ in range(concurrency)]
            await queue.join()
            for task in tasks:
                task.cancel()
        window.end()

    started = time.perf_counter()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(crawl())
    return report(pages, items, time.perf_counter() - started, window)


def report(pages: int, items: list[dict[str, Any]], elapsed: float, window: CrawlWindow) -> dict[str, Any]:
    return {
        "pages": pages,
        "items": len(items),
        "digest": digest(items),
        "elapsed_s": round(elapsed, 4),
        "window_s": round(window.at[1] - window.at[0], 4),
        "cpu_s": window.cpu_s(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=("shoal", "scrapling", "bare"))
    parser.add_argument("url", help="where the crawl starts: the shop's /products, or a page with --one-page")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--one-page", action="store_true", help="the start page's callback is the product one")
    args = parser.parse_args()
    if args.tool == "bare":
        result = bare_crawl(args.url, args.concurrency, args.one_page)
    else:
        result = crawl_spider(args.tool, args.url, args.concurrency, args.one_page)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
