"""Pause and resume as Scrapling users know it: Ctrl+C pauses, running again with the crawl directory resumes."""

import signal
import subprocess
import sys
import threading
import time

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
