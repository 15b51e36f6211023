"""Load benchmark (not run in CI): a 100,000-page local crawl, its memory, and backpressure.

    uv run python bench/load.py [--products 100000] [--workers 1] [--stop-seconds 20]

Serves a generated shop from its own process (listing pages of 100 products; product pages of 1-2 KB,
each linking 3 related products, so the crawl meets three duplicates per page), runs ``shoal run`` on
it against a redis-server this script starts, and samples every 0.5 s the RSS (from /proc) of the
coordinator (the ``shoal run`` process), each worker and redis-server. It prints the peak RSS of each,
Redis's used memory and the memory per seen URL, and pages/s.

Backpressure: once a third of the pages are fetched, the workers are stopped (SIGSTOP) for
``--stop-seconds``; no process's RSS may grow by more than ``--bound-mb`` meanwhile, because the
coordinator dispatches no more than ``concurrent_requests`` and nothing else piles up.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from run import CALLBACKS  # bench/ is this script's directory, so on its path

from shoal.store.server import RedisServer

SITE = """
import json, sys, threading
from shoal.demo.site import ShopSite, start_site
running = start_site(ShopSite(products=int(sys.argv[1]), per_page=100, product_kb=(1, 2)))
print(json.dumps({"url": running.url}), flush=True)
threading.Event().wait()
"""

SPIDER = """
from shoal.spiders import Request, Spider


class LoadSpider(Spider):
    name = "load"
    concurrent_requests = 64
    logging_level = 40
    url = ""

    async def start_requests(self):
        yield Request(self.url + "/products")
""" + CALLBACKS.format()  # the template with its braces unescaped


def rss_mb(pid: int) -> float:
    """A process's resident memory, from /proc/PID/status (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Sampler:
    """RSS samples of the crawl's processes by role, every 0.5 s."""

    processes: dict[int, str] = field(default_factory=dict)  # pid -> role
    peak: dict[str, float] = field(default_factory=dict)  # role -> peak RSS (MB)
    last: dict[str, float] = field(default_factory=dict)  # role -> RSS at the last sample (MB)

    def find(self, run: psutil.Process, redis_pid: int) -> None:
        """Note the processes to watch: the coordinator, its workers, redis-server."""
        self.processes = {run.pid: "coordinator", redis_pid: "redis-server"}
        try:
            for n, child in enumerate(c for c in run.children() if "worker" in " ".join(c.cmdline())):
                self.processes[child.pid] = f"worker {n + 1}"
        except psutil.Error:
            pass

    def sample(self) -> dict[str, float]:
        self.last = {role: rss_mb(pid) for pid, role in self.processes.items()}
        for role, mb in self.last.items():
            self.peak[role] = max(self.peak.get(role, 0.0), mb)
        return self.last

    def workers(self) -> list[int]:
        return [pid for pid, role in self.processes.items() if role.startswith("worker")]


def crawl_key(client: redis.Redis, what: str) -> str | None:
    """The key ``shoal:{CRAWL}:what`` of the (only) crawl in this Redis."""
    return next((key.decode() for key in client.scan_iter(match=f"shoal:{{*}}:{what}")), None)


def pages_fetched(client: redis.Redis) -> int:
    key = crawl_key(client, "stats")
    return int(client.hget(key, "requests_count") or 0) if key else 0


def stop_workers(
    sampler: Sampler, client: redis.Redis, seconds: float, bound_mb: float
) -> dict[str, dict[str, float] | float | bool]:
    """SIGSTOP the workers for ``seconds``; the RSS of every process, and Redis's used memory, before and
    at most during the stop."""
    before = dict(sampler.sample())
    memory_before = client.info("memory")["used_memory"] / 2**20
    most, memory_most = dict(before), memory_before
    for pid in sampler.workers():
        os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.5)
            for role, mb in sampler.sample().items():
                most[role] = max(most[role], mb)
            memory_most = max(memory_most, client.info("memory")["used_memory"] / 2**20)
    finally:
        for pid in sampler.workers():
            os.kill(pid, signal.SIGCONT)
    growth = {role: round(most[role] - before[role], 1) for role in before}
    return {
        "rss_before_mb": {role: round(mb, 1) for role, mb in before.items()},
        "rss_growth_mb": growth,
        "redis_used_memory_growth_mb": round(memory_most - memory_before, 2),
        "within_bound": max(growth.values()) <= bound_mb and memory_most - memory_before <= bound_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="HTTP worker processes")
    parser.add_argument("--stop-seconds", type=float, default=20.0, help="how long the workers are stopped")
    parser.add_argument("--bound-mb", type=float, default=10.0, help="largest RSS growth allowed while stopped")
    args = parser.parse_args()
    pages = args.products + -(-args.products // 100)
    work = Path(tempfile.mkdtemp(prefix="shoal-load-"))
    (work / "spider.py").write_text(SPIDER)
    site = subprocess.Popen([sys.executable, "-c", SITE, str(args.products)], stdout=subprocess.PIPE, text=True)
    with RedisServer() as server:
        try:
            url = json.loads(site.stdout.readline())["url"]
            client = redis.Redis.from_url(server.url)
            command = [sys.executable, "-m", "shoal", "run", str(work / "spider.py"), "--redis", server.url]
            command += ["-a", f"url={url}", "-o", str(work / "items.jsonl"), "--workers", f"default={args.workers}"]
            started = time.monotonic()
            log = (work / "shoal-run.log").open("w")
            run = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
            sampler, stop = Sampler(), None
            while run.poll() is None:
                sampler.find(run, server.pid)
                sampler.sample()
                if stop is None and len(sampler.workers()) == args.workers and pages_fetched(client) >= pages / 3:
                    stop = stop_workers(sampler, client, args.stop_seconds, args.bound_mb)
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            if run.returncode != 0:
                sys.exit(f"shoal run failed: {(work / 'shoal-run.log').read_text()[-2000:]}")
            seen = crawl_key(client, "seen")
            seen_urls = client.scard(seen)
            memory = client.info("memory")
            report = {
                "pages": pages_fetched(client),
                "items": sum(1 for _ in (work / "items.jsonl").open()),
                "elapsed_s": round(elapsed, 1),
                "pages_per_s": round(pages_fetched(client) / (elapsed - args.stop_seconds), 1),
                "peak_rss_mb": {role: round(mb, 1) for role, mb in sampler.peak.items()},
                "redis_used_memory_mb": round(memory["used_memory"] / 2**20, 1),
                "redis_used_memory_peak_mb": round(memory["used_memory_peak"] / 2**20, 1),
                "seen_urls": seen_urls,
                "seen_set_bytes_per_url": round(client.memory_usage(seen) / seen_urls, 1),
                "redis_bytes_per_seen_url": round(memory["used_memory"] / seen_urls, 1),
                "redis_peak_bytes_per_seen_url": round(memory["used_memory_peak"] / seen_urls, 1),
                "backpressure": stop,
            }
        finally:
            site.terminate()
    print(json.dumps(report, indent=2))
    ok = report["items"] == args.products and report["pages"] == pages and stop and stop["within_bound"]
    print(
        f"{report['pages']} pages ({report['items']} items) in {elapsed:.0f} s with a {args.stop_seconds:.0f} s stop:"
        f" {report['pages_per_s']} pages/s; peak RSS {report['peak_rss_mb']} MB;"
        f" Redis {report['redis_used_memory_mb']} MB, {report['redis_bytes_per_seen_url']} B per seen URL"
        f" ({report['seen_set_bytes_per_url']} B of it in the seen set);"
        f" backpressure {'OK' if stop and stop['within_bound'] else 'NOT OK'}: {stop and stop['rss_growth_mb']}"
    )
    Path(__file__).with_name("load-last-run.json").write_text(json.dumps(report, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
