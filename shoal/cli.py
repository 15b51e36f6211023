"""The ``shoal`` command: ``shoal run`` for a crawl on this machine, ``shoal worker`` for a pool member."""

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from redis.exceptions import RedisError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from shoal import __version__

console = Console(stderr=True)


def _key_values(pairs: list[str], what: str) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"shoal: {what} takes key=value, got {pair!r}")
        result[key] = value
    return result


def _progress_table(progress) -> Table:
    stats = progress.stats
    table = Table(
        title=f"pages {stats.requests_count}  items {stats.items_scraped}  "
        f"failed {stats.failed_requests_count}  {stats.requests_per_second:.0f} pages/s"
    )
    for column in ("sid", "frontier", "queued", "in flight", "pages"):
        table.add_column(column, justify="right")
    for sid, (frontier, queued, inflight) in progress.queues.items():
        table.add_row(sid, str(frontier), str(queued), str(inflight), str(stats.sessions_requests_count.get(sid, 0)))
    return table


def run(args: argparse.Namespace) -> int:
    """``shoal run``: crawl with the spider in a file, on this machine."""
    from shoal.local import LocalOptions, run_spider
    from shoal.spiders.loader import SpiderLoadError, create_spider, load_spider_file

    spider_args = _key_values(args.arg, "-a")
    try:
        cls, source = load_spider_file(args.spider_file, args.spider)
        spider = create_spider(cls, spider_args)
    except SpiderLoadError as e:
        console.print(f"[red]shoal: {e}[/red]")
        return 2
    workers = {sid: int(n) for sid, n in _key_values(args.workers, "--workers").items()}
    if args.output and Path(args.output).suffix.lower() not in (".json", ".jsonl", ".csv", ".xml"):
        console.print(f"[red]shoal: cannot write items to {args.output}: use .json, .jsonl, .csv or .xml[/red]")
        return 2
    live = Live(console=console, refresh_per_second=4, transient=True) if console.is_terminal else None
    options = LocalOptions(
        redis_url=args.redis,
        workers=workers,
        output=args.output,
        args=spider_args,
        source=(source, str(args.spider_file)),
        on_progress=(lambda p: live.update(_progress_table(p))) if live else None,
    )
    try:
        with live or contextlib.nullcontext():
            result = run_spider(spider, **vars(options))
    except (RedisError, OSError, RuntimeError, ValueError) as e:
        console.print(f"[red]shoal: the crawl stopped: {type(e).__name__}: {e}[/red]")
        return 1
    stats = result.stats
    console.print(_stats_table(stats.to_dict()))
    if args.output:
        console.print(f"wrote {len(result.items)} items to {args.output}")
    return 0


def _stats_table(stats: dict) -> Table:
    table = Table(title="crawl stats", show_header=False)
    for name, value in stats.items():
        if value not in ({}, [], 0, 0.0, False) or name in ("items_scraped", "requests_count"):
            table.add_row(name, str(value))
    return table


def worker(args: argparse.Namespace) -> int:
    """``shoal worker``: serve one session kind's job streams until SIGTERM or Ctrl+C."""
    from redis.asyncio import Redis

    from shoal.workers.worker import Worker

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        redis = Redis.from_url(args.redis)
        try:
            await Worker(redis, args.kind, args.sid, capacity=args.capacity).run(stop)
        finally:
            await redis.aclose()

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(serve())
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="shoal", description=__doc__)
    root.add_argument("--version", action="version", version=f"shoal {__version__}")
    commands = root.add_subparsers(dest="command", required=True)

    p = commands.add_parser("run", help="run a spider file on this machine and write its items")
    p.add_argument("spider_file", type=Path)
    p.add_argument("-o", "--output", help="items file: .jsonl, .json, .csv or .xml")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL, else a private redis-server)")
    p.add_argument("-a", dest="arg", action="append", default=[], metavar="KEY=VALUE", help="spider argument")
    p.add_argument("--workers", action="append", default=[], metavar="SID=N", help="worker processes for a sid")
    p.add_argument("--spider", help="which spider, when the file defines several (class or spider name)")
    p.set_defaults(func=run)

    p = commands.add_parser("worker", help="serve the jobs of one session kind")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL")
    p.add_argument("--kind", choices=["http", "dynamic", "stealth"], required=True)
    p.add_argument("--sid", action="append", help="serve only this sid (repeatable; default: every sid of the kind)")
    p.add_argument("--capacity", type=int, help="jobs held at once (default: 64 for http, 4 tabs for browsers)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=worker)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except KeyboardInterrupt:
        sys.exit(130)
