"""The examples run: the README's demo crawl, and the reference page's spiders on the local shop."""

import subprocess
import sys
from pathlib import Path

import pytest

from shoal.spiders.loader import create_spider, load_spider_file
from shoal.workers.chromium import find_chromium
from tests.challenge_site import ChallengeSite

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, shop, redis_url: str, start: str = "/products"):
    cls, source = load_spider_file(EXAMPLES / name)
    spider = create_spider(cls, {"start_urls": [f"{shop.url}{start}"]})
    return spider.start(redis_url=redis_url, source=(source, str(EXAMPLES / name)))


def _chromium() -> bool:
    try:
        return bool(find_chromium())
    except FileNotFoundError:
        return False


NEEDS_CHROMIUM = pytest.mark.skipif(not _chromium(), reason="no Chromium")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("reference_multi_session.py", marks=NEEDS_CHROMIUM),  # its product pages: a stealth browser
        "reference_same_class.py",
        "reference_argument_inheritance.py",
    ],
)
def test_reference_shop_examples_find_every_product(name, shop, redis_url):
    result = run_example(name, shop, redis_url)
    expected = sorted((item["name"], item["price"]) for item in shop.site.expected_items())
    assert sorted((item["name"], item["price"]) for item in result.items) == expected


def test_reference_session_arguments_reach_the_server(shop, redis_url):
    result = run_example("reference_session_arguments.py", shop, redis_url, start="/echo")
    assert {"authorization": "Bearer token123"} in result.items
    assert {"method": "POST", "body": "field=value"} in result.items


@NEEDS_CHROMIUM
def test_reference_browser_arguments_solve_cloudflare_in_the_stealth_pool_and_wait_for_javascript(
    redis_url, monkeypatch
):
    with ChallengeSite() as site:  # https://nopecha.com/demo/cloudflare is this site's managed challenge
        monkeypatch.setenv("SHOAL_CHROMIUM_FLAGS", site.chromium_flags)
        result = run_example("reference_browser_arguments.py", site, redis_url, start="/")
    items = {item["page"]: item for item in result.items}
    assert items["cloudflare"] == {"page": "cloudflare", "status": 200, "title": "nopecha content"}
    assert items["dynamic"] == {"page": "dynamic", "loaded": "loaded by JavaScript"}
    assert site.clicks and site.clicks[-1]["trusted"]
    assert result.stats.sessions_requests_count == {"http": 1, "stealth": 1, "browser": 1}


def test_readme_demo_command_writes_the_demo_shops_items(tmp_path):
    out = tmp_path / "items.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "shoal", "run", str(EXAMPLES / "shop.py"), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_text().count("\n") == 500
    assert "items_scraped" in done.stderr
