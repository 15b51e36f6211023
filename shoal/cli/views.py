"""Terminal views (rich tables) of crawls, their queues, workers and stats."""

import time
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # for annotations only: `shoal health` imports this module and must stay quick
    from shoal.common.messages import FailedRequest
    from shoal.coordinator.status import CrawlStatus, WorkerStatus
    from shoal.local.run import Progress


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.0f}h"


def crawls_table(crawls: list["CrawlStatus"]) -> Table:
    """One row per crawl: state, pages, items, errors, rate, owner."""
    table = Table(title="crawls")
    for column in ("crawl", "spider", "state", "pages", "items", "errors", "pages/s", "coordinator"):
        table.add_column(column, justify="left" if column in ("crawl", "spider", "state", "coordinator") else "right")
    for crawl in crawls:
        table.add_row(
            crawl.crawl,
            crawl.spider,
            f"{crawl.state} ({crawl.stop_reason})" if crawl.stop_reason else crawl.state,
            str(crawl.pages),
            str(crawl.items),
            str(crawl.errors),
            f"{crawl.pages_per_second:.1f}",
            crawl.owner or "-",
        )
    return table


def queues_table(crawls: list["CrawlStatus"]) -> Table:
    """One row per sid of each crawl: where its work waits, and who serves it."""
    table = Table(title="queues (a growing 'queued' means the pool needs more workers)")
    for column in ("crawl", "sid", "pool", "frontier", "queued", "in flight", "live workers", "pages", "pages/s"):
        table.add_column(column, justify="left" if column in ("crawl", "sid", "pool") else "right")
    for crawl in crawls:
        for sid in crawl.sids.values():
            table.add_row(
                crawl.crawl,
                sid.sid,
                sid.kind,
                str(sid.frontier),
                str(sid.queued),
                str(sid.inflight),
                str(sid.workers) if sid.workers else "[red]0[/red]",
                str(sid.pages),
                f"{sid.pages_per_second:.1f}",
            )
    return table


def status_view(crawls: list["CrawlStatus"]) -> Group:
    """``shoal status``: the crawls, then their queues, then the reason of any failure."""
    parts: list = [crawls_table(crawls), queues_table(crawls)]
    parts += [Text.assemble((f"{crawl.crawl} failed:", "red"), "\n", crawl.error) for crawl in crawls if crawl.error]
    return Group(*parts)


def workers_table(workers: list["WorkerStatus"]) -> Table:
    """``shoal workers``: each registered worker, alive or dead."""
    table = Table(title="workers")
    for column in ("worker", "pool", "sids", "state", "held", "capacity", "fetched", "RSS MB", "seen", "host", "pid"):
        table.add_column(column, justify="left" if column in ("worker", "pool", "sids", "state", "host") else "right")
    now = time.time()
    for worker in workers:
        info = worker.info
        table.add_row(
            info.id,
            info.kind,
            ",".join(info.sids) or "all",
            "live" if worker.alive else "[red]dead[/red]",
            str(info.held),
            str(info.capacity),
            str(info.fetched),
            str(info.rss // 2**20),
            _age(now - info.seen) + " ago",
            info.host,
            str(info.pid),
        )
    return table


def failed_table(failed: list["FailedRequest"]) -> Table:
    """``shoal failed``: each request whose fetch failed, oldest first, with why."""
    table = Table(title=f"failed requests ({len(failed)})")
    for column in ("failed", "kind", "sid", "url", "error"):
        table.add_column(column, overflow="fold")
    now = time.time()
    for entry in failed:
        table.add_row(_age(now - entry.time) + " ago", entry.kind, entry.request.sid, entry.request.url, entry.message)
    return table


def stats_table(stats: dict) -> Table:
    """Final crawl stats, leaving out what is zero or empty."""
    table = Table(title="crawl stats", show_header=False)
    for name, value in stats.items():
        if value not in ({}, [], 0, 0.0, False) or name in ("items_scraped", "requests_count"):
            table.add_row(name, str(value))
    return table


def progress_table(progress: "Progress") -> Table:
    """``shoal run``'s live line: totals, then each sid's queues."""
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
