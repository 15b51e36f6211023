"""Pause and resume as Scrapling users know it: Ctrl+C pauses, running again with the crawl directory resumes."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from shoal.demo.site import ShopSite, start_site
from tests.test_service import SHOP_SPIDER

SPIDER = (
    SHOP_SPIDER
    + """
    starts = ""

    async def on_start(self, resuming=False):
        with open(self.starts, "a") as record:
            record.write(f"{resuming}\\n")
"""
)


def wait_until(condition, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not met within {timeout} s"
        time.sleep(0.05)


def wait_for_line(process: subprocess.Popen, text: str, timeout: float = 30) -> None:
    """Read ``process``'s stderr until a line contains ``text``."""
    found = threading.Event()

    def read() -> None:
        for line in process.stderr:
            if text in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(timeout), f"{text!r} not printed within {timeout} s"


class Run:
    def __init__(self, tmp_path, site):
        self.spider = tmp_path / "spider.py"
        self.spider.write_text(SPIDER)
        self.crawldir = tmp_path / "crawl"
        self.output = tmp_path / "items.jsonl"
        self.starts = tmp_path / "starts.txt"
        self.site = site

    def start(self) -> subprocess.Popen:
        command = [sys.executable, "-m", "shoal", "run", str(self.spider), "--crawldir", str(self.crawldir)]
        command += ["-a", f"url={self.site.url}", "-a", f"starts={self.starts}", "-o", str(self.output)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def product_hits(self) -> int:
        return sum(1 for _, _, path in self.site.log if path.startswith("/product/"))


@pytest.fixture
def slow_site():
    with start_site(ShopSite(products=60, delay=0.1)) as running:
        yield running


def test_ctrl_c_pauses_and_running_again_resumes_with_exactly_the_items_and_no_page_fetched_twice(tmp_path, slow_site):
    run = Run(tmp_path, slow_site)
    first = run.start()
    wait_until(lambda: run.product_hits() >= 10)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "paused: run the same command to resume" in err
    fetched_before = run.product_hits()
    assert fetched_before < 60
    assert (run.crawldir / "crawl.json").exists()

    second = run.start()
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    names = run.output.read_text().splitlines()
    assert len(names) == len(set(names)) == 60
    paths = [path for _, _, path in slow_site.log]
    assert len(paths) == len(set(paths)) == 63  # every page fetched once over the two runs
    assert run.starts.read_text().split() == ["False", "True"]  # on_start(resuming=True) the second time
    assert not (run.crawldir / "crawl.json").exists()  # a completed crawl leaves no state behind
    assert not (run.crawldir / "redis").exists()


def test_a_second_ctrl_c_stops_at_once_and_the_crawl_still_resumes_exactly(tmp_path):
    with start_site(ShopSite(products=20, delay=1.5)) as site:
        run = Run(tmp_path, site)
        first = run.start()
        wait_until(lambda: run.product_hits() >= 2)
        first.send_signal(signal.SIGINT)
        wait_for_line(first, "Pausing")  # the first Ctrl+C was handled on its own
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
        assert first.returncode == 130
        second = run.start()
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        names = run.output.read_text().splitlines()
        assert len(names) == len(set(names)) == 20


MIXED_SPIDER = """
from shoal.fetchers import AsyncDynamicSession, FetcherSession
from shoal.spiders import Request, Response, Spider


class MixedSpider(Spider):
    name = "mixed"
    concurrent_requests = 4
    logging_level = 30
    url = ""

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession())
        manager.add("browser", AsyncDynamicSession(headless=True), lazy=True)

    async def start_requests(self):
        yield Request(self.url + "/products")

    async def parse(self, response: Response):
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, sid="browser", callback=self.parse_product)
        if next_page := response.css("a.next::attr(href)").get():
            yield response.follow(next_page)

    async def parse_product(self, response: Response):
        yield {"name": response.css("h1::text").get(""), "price": response.css(".price::text").get("")}
"""


class TerminalRun:
    """``shoal run`` started as a terminal starts a job: the leader of a process group of its own, so that
    ``ctrl_c()`` sends SIGINT to the whole group, exactly as the terminal's Ctrl+C does."""

    def __init__(self, tmp_path, site, *args: str) -> None:
        spider = tmp_path / "mixed.py"
        spider.write_text(MIXED_SPIDER)
        self.output = tmp_path / "items.jsonl"
        self.site = site
        command = [sys.executable, "-m", "shoal", "run", str(spider), "-a", f"url={site.url}", "-o", str(self.output)]
        env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}  # a private Redis
        env["COLUMNS"] = "400"  # no line of the report wrapped
        self.process = subprocess.Popen(
            [*command, *args], stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.descendants: list[psutil.Process] = []

    def _read(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.stderr)

    def product_hits(self) -> set[str]:
        return {path for _, _, path in self.site.log if path.startswith("/product/")}

    def wait_for_pages(self, count: int) -> None:
        """Wait until ``count`` product pages were fetched (by the browser), then note every process below."""
        wait_until(lambda: len(self.product_hits()) >= count, timeout=120)
        self.descendants = psutil.Process(self.process.pid).children(recursive=True)
        assert any("chrom" in child.name().lower() for child in self.descendants)

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    def finish(self, timeout: float = 60) -> str:
        self.process.wait(timeout)
        _, alive = psutil.wait_procs(self.descendants, timeout=20)
        assert not alive, f"left running: {alive}"
        return "".join(self.stderr)

    def items(self) -> list[str]:
        """The names of the items written, checked to be products the site served, each once."""
        names = [json.loads(line)["name"] for line in self.output.read_text().splitlines()]
        assert len(names) == len(set(names))
        assert set(names) <= {f"Product {path.split('/')[-1]}" for path in self.product_hits()}
        return names


@pytest.fixture
def slow_shop_for_browsers():
    with start_site(ShopSite(products=40, delay=0.3)) as running:
        yield running


def test_a_terminals_ctrl_c_pauses_shoal_run_which_writes_every_item_so_far_and_leaves_no_process_behind(
    tmp_path, slow_shop_for_browsers
):
    run = TerminalRun(tmp_path, slow_shop_for_browsers)
    run.wait_for_pages(3)
    run.ctrl_c()  # to the whole process group: the workers, the browser and Redis must not get it
    err = run.finish()
    assert run.process.returncode == 130, err
    assert "Pausing" in err and "paused: give --crawldir to be able to resume" in err
    assert "Traceback" not in err and "unreachable" not in err and "stopped" not in err
    names = run.items()
    assert len(names) == len(run.product_hits())  # every page fetched was processed
    assert 3 <= len(names) < 40
    assert f"wrote {len(names)} items scraped so far to {run.output}" in err


def test_a_second_ctrl_c_or_sigterm_stops_shoal_run_at_once_still_writing_the_items_so_far(
    tmp_path, slow_shop_for_browsers
):
    run = TerminalRun(tmp_path, slow_shop_for_browsers)
    run.wait_for_pages(3)
    run.ctrl_c()
    wait_until(lambda: run.said("Pausing"), timeout=30)
    run.ctrl_c()
    err = run.finish(timeout=30)
    assert run.process.returncode == 130, err
    assert "Stopping now (Ctrl+C again)" in err and "Traceback" not in err
    assert f"wrote {len(run.items())} items scraped so far" in err  # those processed before it stopped

    again = TerminalRun(tmp_path, slow_shop_for_browsers)
    again.wait_for_pages(len(run.product_hits()) + 3)
    again.process.send_signal(signal.SIGTERM)  # what `kill` or a service manager sends
    err = again.finish(timeout=30)
    assert again.process.returncode == 130, err
    assert "Stopping now (SIGTERM)" in err and "Traceback" not in err
    assert f"wrote {len(again.items())} items scraped so far" in err


def test_a_relative_crawl_directory_works_as_the_readme_writes_it(tmp_path, slow_site):
    spider = tmp_path / "spider.py"
    spider.write_text(SHOP_SPIDER)
    command = [sys.executable, "-m", "shoal", "run", "spider.py", "--crawldir", "crawls/shop", "-o", "items.jsonl"]
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    done = subprocess.run(
        [*command, "-a", f"url={slow_site.url}"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "items.jsonl").read_text().splitlines()) == 60
    assert not (tmp_path / "crawls" / "shop" / "crawl.json").exists()  # completed: nothing left to resume


def test_spider_start_returns_the_items_so_far_when_paused_by_ctrl_c(tmp_path, slow_site, monkeypatch):
    from tests.test_crawl import ShopSpider

    def products() -> int:
        return sum(1 for _, _, path in slow_site.log if path.startswith("/product/"))

    def ctrl_c_after_5_products() -> None:
        wait_until(lambda: products() >= 5)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.delenv("REDIS_URL", raising=False)  # a private Redis
    threading.Thread(target=ctrl_c_after_5_products, daemon=True).start()
    result = ShopSpider(slow_site.url).start(output=tmp_path / "items.json")
    assert result.paused
    assert 5 <= len(result.items) == products() < 60
    assert json.loads((tmp_path / "items.json").read_text()) == list(result.items)
