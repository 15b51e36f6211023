"""A crawl directory (the crawl it holds, and its Redis data), and the Redis a local crawl runs on."""

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from shoal.spiders import Spider
from shoal.store.server import RedisServer


@contextlib.contextmanager
def crawl_redis(url: str | None, crawldir: Path | None) -> Iterator[str]:
    """The Redis URL of a local crawl: ``url``, else $REDIS_URL, else a private redis-server (keeping its
    data in ``crawldir`` when given)."""
    url = url or os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    if crawldir is None:
        with RedisServer(exit_with_parent=True) as server:
            yield server.url
        return
    # The crawl directory keeps the append-only file; a TCP port, as the directory's path may be too
    # long for a unix socket.
    (crawldir / "redis").mkdir(parents=True, exist_ok=True)
    with RedisServer(directory=crawldir / "redis", appendonly=True, unix_socket=False, exit_with_parent=True) as server:
        yield server.url


class CrawlDir:
    """A crawl directory: which crawl it holds (``crawl.json``) and, in local mode, its Redis data."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.record = path / "crawl.json"

    def saved_crawl(self, spider: Spider) -> str | None:
        """The id of the crawl this directory holds for ``spider``, if any."""
        if not self.record.exists():
            return None
        saved = json.loads(self.record.read_text())
        if saved.get("spider") != spider.name:
            raise ValueError(f"{self.path} holds a crawl of spider {saved.get('spider')!r}, not {spider.name!r}")
        return saved["crawl"]

    def save(self, crawl: str, spider: Spider) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.record.write_text(json.dumps({"crawl": crawl, "spider": spider.name}))

    def clear(self) -> None:
        """Forget the crawl: it completed."""
        self.record.unlink(missing_ok=True)
        shutil.rmtree(self.path / "redis", ignore_errors=True)
