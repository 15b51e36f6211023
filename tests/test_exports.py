"""``shoal run -o`` and ``shoal items -o`` write every item format, and each file reads back to the crawl's items."""

import csv
import json

import msgspec
import pytest
import redis
from lxml import etree

from shoal import cli
from shoal.common import keys
from shoal.spiders import Spider

SPIDER = """
from shoal.spiders import Request, Response, Spider


class Products(Spider):
    name = "products"
    logging_level = 40
    base = ""

    async def start_requests(self):
        for n in range(1, 9):
            yield Request(f"{self.base}/product/{n}", meta={"n": n})

    async def parse(self, response: Response):
        n = response.meta["n"]
        item = {
            "n": n,
            "name": response.css("h1::text").get(),
            "price": float(response.css(".price::text").get().lstrip("$")),
            "on_sale": n % 3 == 0,
            "tags": ["odd", "small"] if n % 2 else [],
            "details": {"url": response.url, "related": len(response.css("a.related"))},
            "note": None if n == 4 else 'café & <ü> "quoted", comma',
        }
        if n == 1:
            del item["note"]  # a key only some items have
        yield item
"""


def expected_items(shop) -> list[dict]:
    site = shop.site
    items = []
    for n in range(1, 9):
        item = {
            "n": n,
            "name": site.name(n),
            "price": float(site.price(n).lstrip("$")),
            "on_sale": n % 3 == 0,
            "tags": ["odd", "small"] if n % 2 else [],
            "details": {"url": f"{shop.url}/product/{n}", "related": 3},
            "note": None if n == 4 else 'café & <ü> "quoted", comma',
        }
        if n == 1:
            del item["note"]
        items.append(item)
    return items


def as_text(value) -> str:
    """How CSV and XML exports write a value: containers as JSON, None as empty, the rest with str()."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return str(value)


def read_back(path) -> list[dict]:
    """The items in an exported file, by its format; CSV and XML give every value as text."""
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    root = etree.parse(str(path)).getroot()
    assert root.tag == "items"
    return [{child.get("name", child.tag): child.text or "" for child in item} for item in root.iter("item")]


def as_exported(items: list[dict], suffix: str) -> list[dict]:
    """``items`` as the format keeps them: JSON exactly; CSV a column per key; XML an element per key."""
    if suffix in (".json", ".jsonl"):
        return items
    if suffix == ".csv":
        columns = list(dict.fromkeys(key for item in items for key in item))
        return [{column: as_text(item.get(column)) for column in columns} for item in items]
    return [{key: as_text(value) for key, value in item.items()} for item in items]


def by_n(items: list[dict]) -> list[dict]:
    return sorted(items, key=lambda item: int(item["n"]))


def shoal(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        cli.main(list(args))
    return done.value.code


@pytest.fixture
def spider_file(tmp_path):
    path = tmp_path / "products.py"
    path.write_text(SPIDER)
    return path


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".xml"])
def test_run_and_items_write_each_format_that_reads_back_to_the_crawls_items(
    shop, redis_url, spider_file, tmp_path, suffix
):
    ran = tmp_path / f"run{suffix}"
    assert shoal("run", str(spider_file), "-a", f"base={shop.url}", "--redis", redis_url, "-o", str(ran)) == 0
    (crawl,) = redis.Redis.from_url(redis_url).smembers(keys.CRAWLS)
    listed = tmp_path / "listed" / f"items{suffix}"
    assert shoal("items", crawl.decode(), "--redis", redis_url, "-o", str(listed)) == 0

    expected = as_exported(by_n(expected_items(shop)), suffix)
    assert by_n(read_back(ran)) == expected
    assert by_n(read_back(listed)) == expected


def test_a_bad_items_extension_is_refused_before_anything_starts(shop, redis_url, spider_file, tmp_path, capsys):
    bad = str(tmp_path / "items.txt")
    assert shoal("run", str(spider_file), "-a", f"base={shop.url}", "--redis", redis_url, "-o", bad) == 2
    assert shoal("submit", str(spider_file), "--redis", redis_url, "-o", bad) == 2
    assert shoal("items", "no-such-crawl", "--redis", redis_url, "-o", bad) == 2
    said = " ".join(capsys.readouterr().err.split())  # unwrapped
    assert said.count(f"shoal: cannot export items to '{bad}': use a .json, .jsonl, .csv or .xml file") == 3
    assert redis.Redis.from_url(redis_url).keys("shoal:*") == []  # no crawl was registered or submitted

    class Products(Spider):
        name = "products"
        start_urls = [f"{shop.url}/product/1"]

    with pytest.raises(ValueError, match=r"cannot export items to '.*items\.txt'"):
        Products().start(redis_url=redis_url, output=bad)
    assert redis.Redis.from_url(redis_url).keys("shoal:*") == []
