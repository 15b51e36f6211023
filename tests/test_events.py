"""A crawl's events stream: written with every state and control change, waited on instead of polled, read by
the engine with its responses, and gone with the crawl's other keys."""

import asyncio

import pytest
from redis.asyncio import Redis

from shoal import Client
from shoal.common import keys
from shoal.common.messages import Event, decode
from shoal.common.state import CrawlState
from shoal.coordinator import lifecycle
from shoal.coordinator.queues import CrawlQueues
from shoal.store import events

CRAWL = "c1"
#: A blocked wait must return on the event: well before the waiter's own look at the state, after RECHECK_S.
ON_THE_EVENT_S = events.RECHECK_S / 2


async def _blocked(redis: Redis, clients: int = 1) -> None:
    """Return once Redis has ``clients`` clients blocked in a read (XREAD or XREADGROUP BLOCK)."""
    async with asyncio.timeout(10):
        while (await redis.info("clients"))["blocked_clients"] < clients:
            await asyncio.sleep(0.01)


async def _events(redis: Redis) -> list[tuple[str, str]]:
    entries = await redis.xrange(keys.events(CRAWL))
    return [(event.what, event.value) for event in (decode(fields[b"e"], Event) for _, fields in entries)]


async def test_each_state_and_control_change_writes_an_event_with_it(redis_url):
    redis = Redis.from_url(redis_url)
    async with Client(redis_url) as client:
        await lifecycle.register(redis, CRAWL, "spider", CrawlState.RUNNING)
        await client.crawl(CRAWL).pause()
        await lifecycle.end(redis, CRAWL, CrawlState.CANCELLED)
        assert await _events(redis) == [("state", "running"), ("control", "pause"), ("state", "cancelled")]
    await redis.aclose()


async def test_a_wait_blocked_on_the_events_stream_returns_when_the_crawl_ends(redis_url):
    redis = Redis.from_url(redis_url)
    async with Client(redis_url) as client:
        await lifecycle.register(redis, CRAWL, "spider", CrawlState.RUNNING)
        waiting = asyncio.create_task(client.crawl(CRAWL).wait(60))
        await _blocked(redis)
        await lifecycle.end(redis, CRAWL, CrawlState.FINISHED)
        status = await asyncio.wait_for(waiting, ON_THE_EVENT_S)
        assert status.state == CrawlState.FINISHED
    await redis.aclose()


async def test_a_wait_sees_a_change_made_before_it_blocked(redis_url):
    redis = Redis.from_url(redis_url)
    async with Client(redis_url) as client:
        await lifecycle.register(redis, CRAWL, "spider", CrawlState.RUNNING)
        await lifecycle.end(redis, CRAWL, CrawlState.FINISHED)
        assert (await asyncio.wait_for(client.crawl(CRAWL).wait(60), ON_THE_EVENT_S)).state == CrawlState.FINISHED
        waiter = events.Waiter(redis, keys.events(CRAWL))
        await waiter.mark()  # a change after the mark and before the blocking read is not missed
        await events.set_state(redis, CRAWL, control="pause")
        assert await asyncio.wait_for(waiter.wait(60), ON_THE_EVENT_S)
    await redis.aclose()


async def test_a_wait_that_times_out_says_the_state(redis_url):
    redis = Redis.from_url(redis_url)
    async with Client(redis_url) as client:
        await lifecycle.register(redis, CRAWL, "spider", CrawlState.RUNNING)
        with pytest.raises(TimeoutError, match=f"^crawl {CRAWL} is still running after 0.2 s$"):
            await client.crawl(CRAWL).wait(0.2)
    await redis.aclose()


async def test_a_pause_reaches_the_engine_in_its_blocking_read_of_responses(redis_url):
    redis = Redis.from_url(redis_url)
    queues = CrawlQueues(redis, CRAWL)
    await lifecycle.register(redis, CRAWL, "spider", CrawlState.RUNNING)
    await queues.create({"default": "http"})
    await queues.read(10, None)  # what came before the engine ran (its registration)
    async with Client(redis_url) as client:
        reading = asyncio.create_task(queues.read(10, 60_000))
        await _blocked(redis)
        await client.crawl(CRAWL).pause()
        assert await asyncio.wait_for(reading, ON_THE_EVENT_S) == ([], True)
    assert (await redis.xinfo_groups(keys.events(CRAWL)))[0]["pending"] == 0  # acknowledged as read
    await redis.aclose()


async def test_the_events_stream_expires_and_is_deleted_with_the_crawl(redis_url):
    redis = Redis.from_url(redis_url)
    await lifecycle.register(redis, CRAWL, "spider", CrawlState.RUNNING)
    await lifecycle.end(redis, CRAWL, CrawlState.FINISHED)
    await lifecycle.expire(redis, CRAWL)
    assert 0 < await redis.ttl(keys.events(CRAWL)) <= lifecycle.RETENTION_S
    async with Client(redis_url) as client:
        await client.crawl(CRAWL).delete()
    assert not await redis.exists(keys.events(CRAWL))
    await redis.aclose()
