"""Benchmark: parse + selectors per page, shoal's Response (Scrapling's parser) against a parsel one.

    uv run --group bench python bench/response_parsing.py [--products 500] [--rounds 5]

The pages are the demo shop's (listing pages of 20 products; product pages of 15-30 KB). Each page is
parsed from its bytes and asked what the bench spider asks (bench/run.py): on a listing, the product
links and the next page; on a product, the related links, the name and the price. The parsel side is
what shoal's Response did before it was built on Scrapling's parser: decode the body (w3lib), then
``parsel.Selector``. Prints, for each side, the median and the least milliseconds per page over the
rounds (the sides take turns, so that both see the same load on a busy machine).
"""

import argparse
import statistics
import time
from collections.abc import Callable

from parsel import Selector
from w3lib.encoding import html_to_unicode

from shoal.common.response import Response
from shoal.demo.site import ShopSite

HEADERS = {"Content-Type": "text/html"}


def parsel_page(url: str, body: bytes, listing: bool) -> tuple:
    _, text = html_to_unicode(HEADERS["Content-Type"], body)
    page = Selector(text=text, base_url=url)
    if listing:
        return page.css("a.product::attr(href)").getall(), page.css("a.next::attr(href)").get()
    return page.css("a.related::attr(href)").getall(), page.css("h1::text").get(""), page.css(".price::text").get("")


def shoal_page(url: str, body: bytes, listing: bool) -> tuple:
    page = Response(url, body, headers=HEADERS)
    if listing:
        return page.css("a.product::attr(href)").getall(), page.css("a.next::attr(href)").get()
    return page.css("a.related::attr(href)").getall(), page.css("h1::text").get(""), page.css(".price::text").get("")


def ms_per_page(parse: Callable[[str, bytes, bool], tuple], pages: list[tuple[str, bytes, bool]]) -> float:
    started = time.perf_counter()
    for url, body, listing in pages:
        parse(url, body, listing)
    return (time.perf_counter() - started) * 1000 / len(pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    site = ShopSite(products=args.products)
    pages = [(f"http://shop.test/products?page={p}", site.listing(p).encode(), True) for p in range(1, site.pages + 1)]
    pages += [(f"http://shop.test/product/{n}", site.product(n).encode(), False) for n in range(1, site.products + 1)]
    for url, body, listing in pages:  # both sides find the same
        assert shoal_page(url, body, listing) == parsel_page(url, body, listing), url
    kb = sum(len(body) for _, body, _ in pages) / len(pages) / 1024
    print(f"{len(pages)} pages, {kb:.1f} KB on average; {args.rounds} rounds, the two sides taking turns:")
    sides = {"parsel (before)": parsel_page, "shoal Response (Scrapling's parser)": shoal_page}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, parse in sides.items():
            times[name].append(ms_per_page(parse, pages))
    for name, seen in times.items():
        print(f"  {name:38} median {statistics.median(seen):.3f} ms/page, min {min(seen):.3f}")


if __name__ == "__main__":
    main()
