"""The README's first example, as printed there (only its start URL pointed at the local shop), runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.client import Client, SubmissionError
from shoal.demo.site import ShopSite, start_site
from tests.test_service import Service

README = Path(__file__).parent.parent / "README.md"


def first_example() -> str:
    """The first Python block of the README."""
    return re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)


@pytest.fixture(scope="module")
def small_shop():
    with start_site(ShopSite(products=6)) as running:
        yield running


def example_file(tmp_path: Path, shop, source: str | None = None) -> Path:
    path = tmp_path / "products.py"
    path.write_text((source or first_example()).replace("https://shop.example.com", shop.url))
    return path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=180, cwd=cwd)


def test_the_readme_example_crawls_once_with_shoal_run_and_runs_as_a_script(tmp_path, small_shop):
    spider = example_file(tmp_path, small_shop)
    done = run("-m", "shoal", "run", str(spider), "-o", "items.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "items.jsonl").read_text().count("\n") == 6
    assert small_shop.hits("/products") == 1  # the crawl ran once, not a second time at import

    script = run(str(spider), cwd=tmp_path)  # `python products.py`: the __main__ block starts it
    assert script.returncode == 0, script.stderr[-3000:]
    assert script.stdout.split()[0] == "6"
    assert small_shop.hits("/products") == 2


MODULE_LEVEL_START = "\n\nresult = ProductSpider().start()\n"


async def test_a_spider_file_that_starts_a_crawl_when_imported_is_an_error_pointing_to_the_main_guard(
    tmp_path, small_shop, redis_url
):
    source = first_example().split('if __name__ == "__main__":')[0] + MODULE_LEVEL_START
    spider = example_file(tmp_path, small_shop, source)
    hits = len(small_shop.log)
    done = run("-m", "shoal", "run", str(spider), cwd=tmp_path)
    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert "ProductSpider().start() ran while shoal imported" in said
    assert 'under `if __name__ == "__main__":`' in said

    service = Service(redis_url, tmp_path)
    service.start("coordinator")
    try:
        async with Client(redis_url) as client:
            with pytest.raises(SubmissionError) as refused:
                await client.submit(spider)
    finally:
        service.stop()
    assert "ProductSpider().start() ran while shoal imported" in str(refused.value)
    assert len(small_shop.log) == hits  # nothing was crawled
