"""Commands that change a service's crawls through its Redis: submit, pause, resume, cancel, delete, retry."""

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import AuthenticationError, RedisError

from shoal.cli import views
from shoal.cli.run import exit_code, key_values, output_ok, quota_args
from shoal.cli.terminal import console, error, out
from shoal.common.state import ACTIVE, CrawlState


def client_command(
    work: Callable[[Any, argparse.Namespace], Awaitable[int]], retries: int | None = None
) -> Callable[[argparse.Namespace], int]:
    """A CLI command that talks to the service through a Client on ``--redis`` (retrying each command
    ``retries`` times while Redis is unreachable; default: the Client's)."""

    def command(args: argparse.Namespace) -> int:
        from shoal.client import Client
        from shoal.store.connection import masked, unreachable_cause

        async def go() -> int:
            async with Client(args.redis, **({} if retries is None else {"retries": retries})) as client:
                return await work(client, args)

        try:
            return asyncio.run(go())
        except AuthenticationError as e:
            error(f"Redis at {masked(args.redis)} refused the credentials: {e}")
            return 1
        except RedisError as e:
            error(str(unreachable_cause(e) or f"Redis at {masked(args.redis)}: {e}"))
            return 1
        except LookupError as e:
            error(e.args[0])
            return 1

    return command


@client_command
async def submit(client: Any, args: argparse.Namespace) -> int:
    """``shoal submit``: send a spider file to the service; prints the crawl id. With ``--wait`` or ``-o``
    it waits for the crawl to end (``-o``: then writes its items to a file here, where the command runs)."""
    from shoal.client import CrawlFailed, SubmissionError

    if not output_ok(args.output):
        return 2
    try:
        crawl = await client.submit(
            args.spider_file, spider_name=args.spider, **key_values(args.arg, "-a"), **quota_args(args)
        )
    except (SubmissionError, TimeoutError) as e:
        error(f"{e}")
        return 1
    print(crawl.id, flush=True)
    if not (args.wait or args.output):
        return 0
    try:
        status = await crawl.wait()
    except CrawlFailed as e:
        error(f"{e}")
        return 1
    except asyncio.CancelledError:  # Ctrl+C: the crawl goes on without us
        later = f" (shoal items {crawl.id} -o {args.output} writes its items)" if args.output else ""
        console.print(f"stopped waiting; crawl {crawl.id} keeps running on the service{later}")
        raise
    out.print(views.crawls_table([status]))
    if args.output:
        console.print(f"wrote {await crawl.export(args.output)} items to {args.output}")
    if status.state == CrawlState.CANCELLED:
        error(f"crawl {crawl.id} was cancelled")
        return 1
    return exit_code(await crawl.stats(), args.allow_failures)


def crawl_action(action: str) -> Callable[[argparse.Namespace], int]:
    async def command(client: Any, args: argparse.Namespace) -> int:
        await getattr(client.crawl(args.crawl), action)()
        kept = f" (its items and stats are kept; shoal delete {args.crawl} removes them)" if action == "cancel" else ""
        console.print(f"{action}: {args.crawl}{kept}")
        return 0

    return client_command(command)


@client_command
async def delete(client: Any, args: argparse.Namespace) -> int:
    """``shoal delete``: remove an ended crawl and everything it holds (``cancel`` keeps them)."""
    try:
        removed = await client.crawl(args.crawl).delete()
    except ValueError as e:
        error(f"{e}")
        return 1
    console.print(f"deleted crawl {args.crawl} ({removed} keys)")
    return 0


@client_command
async def retry(client: Any, args: argparse.Namespace) -> int:
    """``shoal retry``: put a crawl's failed requests back in its frontiers; an ended crawl runs again."""
    crawl = client.crawl(args.crawl)
    before = await crawl.status()
    moved = await crawl.retry_failed()
    console.print(f"re-queued {moved} failed requests of {args.crawl}")
    if moved and before.state not in ACTIVE:
        if any(live for _, live in await client.coordinators()):
            console.print("the crawl runs again: a coordinator of the service resumes it")
        else:
            console.print("[yellow]no coordinator runs on this Redis: start `shoal coordinator` to resume it[/yellow]")
    return 0
