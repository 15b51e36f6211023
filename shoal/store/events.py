"""Events streams: a crawl's (keys.events: its state and control changes) and the workers' (keys.WORKER_EVENTS).

A change and its event are written in one transaction, so the two never disagree. Whoever waits for a change
blocks on the stream instead of polling: it marks the stream (``Waiter.mark``), then reads the state, then
blocks for entries after the mark (``Waiter.wait``); a change between the two reads is after the mark, so it
is not missed.
"""

import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shoal.common import keys
from shoal.common.messages import Event, encode

#: A waiter reads the state again after this long without an event: a crawl whose keys Redis lost, or a change
#: written by a process that writes no events (an older version, a hand-made HSET), is noticed all the same.
RECHECK_S = 5.0


def add(client: Redis | Pipeline, stream: str, what: str, value: str) -> Any:
    """Append an Event to ``stream`` (on a pipeline: queue it), trimming the stream to about EVENTS_MAXLEN."""
    event = encode(Event(what=what, value=value, time=time.time()))
    return client.xadd(stream, {"e": event}, maxlen=keys.EVENTS_MAXLEN, approximate=True)


def write_state(pipe: Pipeline, crawl: str, **fields: float | str) -> None:
    """Queue on ``pipe`` (a transaction) the write of ``fields`` into crawl ``crawl``'s state hash, and an event
    for each of its ``state`` and ``control`` there."""
    pipe.hset(keys.state(crawl), mapping=fields)
    for what in ("state", "control"):
        if what in fields:
            add(pipe, keys.events(crawl), what, str(fields[what]))


async def set_state(redis: Redis, crawl: str, **fields: float | str) -> None:
    """Write ``fields`` into crawl ``crawl``'s state hash with their events (write_state), in one transaction."""
    async with redis.pipeline(transaction=True) as pipe:
        write_state(pipe, crawl, **fields)
        await pipe.execute()


class Waiter:
    """Waits for new entries of one events stream."""

    def __init__(self, redis: Redis, stream: str) -> None:
        self.redis = redis
        self.stream = stream
        self.last: bytes | str = "0-0"

    async def mark(self) -> None:
        """Remember the stream's newest entry: ``wait`` returns on entries after it. Call it before reading
        the state that the wait is for."""
        newest = await self.redis.xrevrange(self.stream, count=1)
        self.last = newest[0][0] if newest else "0-0"

    async def wait(self, timeout: float | None = None) -> bool:
        """Block until the stream has entries after the mark (the mark moves past them), for at most ``timeout``
        seconds (None: no limit), and never longer than RECHECK_S; True if entries came."""
        block = RECHECK_S if timeout is None else min(timeout, RECHECK_S)
        reply = await self.redis.xread({self.stream: self.last}, block=max(1, int(block * 1000)))
        for _, entries in reply or ():
            self.last = entries[-1][0]
        return bool(reply)
