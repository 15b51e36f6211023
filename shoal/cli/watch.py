"""Commands that show a service's crawls and workers: status, top, items, failed, workers."""

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any

from rich.live import Live

from shoal.cli import views
from shoal.cli.control import client_command
from shoal.cli.run import output_ok
from shoal.cli.terminal import console, out, print_json


async def _with_stats(client: Any, crawls: list[Any]) -> list[dict[str, Any]]:
    """The crawls as JSON-ready dicts, each with its whole Scrapling-style ``stats``."""
    import msgspec

    return [{**msgspec.to_builtins(c), "stats": (await client.crawl(c.crawl).stats()).to_dict()} for c in crawls]


@client_command
async def status(client: Any, args: argparse.Namespace) -> int:
    """``shoal status``: every crawl (or one) with its per-sid queues."""
    crawls = [await client.crawl(args.crawl).status()] if args.crawl else await client.crawls()
    if args.json:
        found = await _with_stats(client, crawls)
        print_json(found[0] if args.crawl else found)
    else:
        out.print(views.status_view(crawls))
    return 0


@client_command
async def top(client: Any, args: argparse.Namespace) -> int:
    """``shoal top``: ``shoal status`` and ``shoal workers``, refreshed until Ctrl+C. In a terminal the view
    is redrawn in place; otherwise each refresh is printed after the last (a JSON line each with --json)."""
    from rich.console import Group

    live = Live(console=out, screen=True, refresh_per_second=4) if out.is_terminal and not args.json else None
    with live or contextlib.nullcontext():
        while True:
            crawls, workers = await client.crawls(), await client.workers()
            if args.json:
                print_json({"time": time.time(), "crawls": await _with_stats(client, crawls), "workers": workers})
            elif live:
                live.update(Group(views.status_view(crawls), views.workers_table(workers)))
            else:
                out.print(f"shoal top, {time.strftime('%Y-%m-%d %H:%M:%S')}", markup=False)
                out.print(Group(views.status_view(crawls), views.workers_table(workers)))
                sys.stdout.flush()
            await asyncio.sleep(args.interval)


@client_command
async def items(client: Any, args: argparse.Namespace) -> int:
    """``shoal items``: a crawl's items as JSON lines, or into a file by its extension."""
    import msgspec

    from shoal.spiders import ItemList

    if not output_ok(args.output):
        return 2
    crawl = client.crawl(args.crawl)
    await crawl.status()  # an unknown crawl is an error, not an empty listing
    stream = crawl.items(follow=args.follow)
    if args.output:
        found = ItemList([item async for item in stream])
        found.export(args.output)
        console.print(f"wrote {len(found)} items to {args.output}")
        return 0
    async for item in stream:
        sys.stdout.write(msgspec.json.encode(item).decode() + "\n")
        sys.stdout.flush()
    return 0


@client_command
async def failed(client: Any, args: argparse.Namespace) -> int:
    """``shoal failed``: a crawl's requests whose fetch failed, with the kind and message of each error."""
    crawl = client.crawl(args.crawl)
    await crawl.status()  # an unknown crawl is an error, not an empty listing
    if args.json:
        for entry in await crawl.failed():
            print_json(entry)
    else:
        out.print(views.failed_table(await crawl.failed()))
    return 0


@client_command
async def workers(client: Any, args: argparse.Namespace) -> int:
    """``shoal workers``: every registered worker, alive or dead."""
    if args.json:
        print_json(await client.workers())
    else:
        out.print(views.workers_table(await client.workers()))
    return 0
