"""The worker processes of a local crawl: started per sid, restarted when killed, stopped at the end."""

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable
from typing import TypeVar

import msgspec
from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.messages import WorkerInfo
from shoal.common.processes import child_options
from shoal.spiders import Spider
from shoal.store import events

T = TypeVar("T")
log = logging.getLogger("shoal.local")


async def _start_worker(command: list[str], redis_url: str) -> asyncio.subprocess.Process:
    """Start a worker process in its own session that does not outlive this one (shoal.common.processes). It
    gets the Redis URL in its environment, not on its command line, where any user of the machine could
    read the password."""
    env = {**os.environ, "REDIS_URL": redis_url}
    return await asyncio.create_subprocess_exec(*command, env=env, **child_options())


class WorkerProcesses:
    """The worker processes of a local crawl: one per sid unless ``counts`` says otherwise."""

    def __init__(self, spider: Spider, redis_url: str, counts: dict[str, int], capacity: int | None) -> None:
        manager = spider.session_manager
        unknown = set(counts) - set(manager.session_ids)
        if unknown:
            raise ValueError(f"--workers names unknown sids {sorted(unknown)} (sessions: {manager.session_ids})")
        self.redis_url = redis_url
        self.commands = []
        for sid in manager.session_ids:
            # --drain 0: stopped, a worker hands back its jobs at once (a paused crawl has none left)
            command = [sys.executable, "-m", "shoal", "worker", "--log-level", "WARNING", "--drain", "0"]
            command += ["--kind", manager.get(sid).kind, "--sid", sid]
            command += ["--capacity", str(capacity)] if capacity else []
            self.commands += [command] * counts.get(sid, 1)
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        self.processes = [await _start_worker(command, self.redis_url) for command in self.commands]

    async def wait_ready(self, redis: Redis, timeout: float = 60) -> None:
        """Wait until every worker has registered, so the crawl does not start with half its pools (blocking on
        keys.WORKER_EVENTS between two looks at the registry)."""
        host = socket.gethostname()

        async def registered() -> None:
            waiter = events.Waiter(redis, keys.WORKER_EVENTS)
            while True:
                await waiter.mark()
                records = await redis.hgetall(keys.WORKERS)
                infos = [msgspec.json.decode(raw, type=WorkerInfo) for raw in records.values()]
                running = {process.pid for process in self.processes if process.returncode is None}
                if running <= {i.pid for i in infos if i.host == host}:
                    return
                await waiter.wait()

        await self.guard(asyncio.wait_for(registered(), timeout))

    async def guard(self, work: Awaitable[T]) -> T:
        """Await ``work`` while supervising the workers: one killed by a signal is started again; one
        that exits by itself (it cannot start, or crashed) cancels ``work`` with a RuntimeError naming it."""
        task = asyncio.ensure_future(work)
        exits = {asyncio.ensure_future(process.wait()): i for i, process in enumerate(self.processes)}
        try:
            while True:
                done, _ = await asyncio.wait([task, *exits], return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    return task.result()
                for exited in done:
                    i, code = exits.pop(exited), exited.result()
                    if code >= 0:
                        raise RuntimeError(f"a worker ({' '.join(self.commands[i][3:])}) exited with code {code}")
                    log.warning("a worker was killed by signal %d; starting another", -code)
                    self.processes[i] = await _start_worker(self.commands[i], self.redis_url)
                    exits[asyncio.ensure_future(self.processes[i].wait())] = i
        finally:
            task.cancel()
            for waiter in exits:
                waiter.cancel()
            await asyncio.wait([task])  # it ends (its finally blocks run) before the workers are stopped

    async def stop(self) -> None:
        """SIGTERM every worker (they hand back unfinished jobs), kill those still there after 15 s."""
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
