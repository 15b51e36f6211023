"""Ctrl+C and SIGTERM during a local crawl: the first Ctrl+C pauses, a second one or SIGTERM stops now."""

import asyncio
import logging
import signal

from shoal.coordinator.engine import CrawlEngine

log = logging.getLogger("shoal.local")


class Interrupts:
    """Ctrl+C and SIGTERM from the start of a local crawl's run to the end of ``crawl()``: the first Ctrl+C
    pauses the crawl gracefully; a second one, or SIGTERM, stops it now (cancels ``run``); once the run
    ended, they are noted and the items are still written. Installed only in the main thread (signals go
    there); elsewhere a crawl has no handlers."""

    def __init__(self, engine: CrawlEngine, run: asyncio.Future) -> None:
        self.engine, self.run = engine, run
        self.stopped = ""  # why the run was stopped now, if it was
        self.loop: asyncio.AbstractEventLoop | None = None  # where the handlers are installed

    def _stop(self, why: str) -> None:
        if self.run.done():
            log.warning("%s: the run is already over; writing what it stored and stopping the workers", why)
        elif not self.stopped:
            self.stopped = why
            log.warning("Stopping now (%s): requests in flight are left unprocessed%s", why, self._resume_hint())
            self.run.cancel()

    def _ctrl_c(self) -> None:
        if self.engine.pausing or self.run.done():
            self._stop("Ctrl+C again" if self.engine.pausing else "Ctrl+C")
            return
        log.warning("Pausing: finishing the requests in flight (Ctrl+C again to stop now)%s", self._resume_hint())
        self.engine.pause()

    def _resume_hint(self) -> str:
        crawldir = self.engine.spider.crawldir
        return f"; run again with crawldir {crawldir} to resume" if crawldir else ""

    def install(self) -> "Interrupts":
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self._ctrl_c)
            loop.add_signal_handler(signal.SIGTERM, self._stop, "SIGTERM")
        except (RuntimeError, ValueError, NotImplementedError):  # not the main thread: no handlers
            return self
        self.loop = loop
        return self

    def remove(self) -> None:
        if self.loop:
            self.loop.remove_signal_handler(signal.SIGINT)
            self.loop.remove_signal_handler(signal.SIGTERM)
