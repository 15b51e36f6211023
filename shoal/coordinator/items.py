"""Items: their JSON form in Redis (custom stats share it), and reading them back."""

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.messages import plain

#: Items and custom stats as JSON; Scrapling's selector results become str and dict, any other type JSON has no
#: form for (datetime, Decimal, UUID, tuple and set have one) is a TypeError, never its str() in silence.
_encoder = msgspec.json.Encoder(enc_hook=plain)


def to_json(value: Any) -> bytes:
    """``value`` as stored in Redis; a TypeError for a value JSON has no form for."""
    return _encoder.encode(value)


def json_error(item: dict[str, Any], error: TypeError) -> str:
    """Which of ``item``'s keys holds a value JSON has no form for, and its type."""
    for key, value in item.items():
        try:
            _encoder.encode(value)
        except TypeError as e:
            return f"its key {key!r} holds a value that cannot be written as JSON ({e})"
    return str(error)


async def read_items(redis: Redis, crawl: str) -> AsyncIterator[dict[str, Any]]:
    """Every item of ``crawl`` stored so far, in order."""
    last = "-"
    while batch := await redis.xrange(keys.items(crawl), min=last, count=1000):
        for _, fields in batch:
            yield msgspec.json.decode(fields[b"i"])
        last = "(" + batch[-1][0].decode()
