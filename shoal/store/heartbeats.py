"""The heartbeat records of workers and coordinators in Redis, and which of them are alive.

Light on purpose (redis and msgspec only): ``shoal health``, a container's health check run every
15 s in every container, needs nothing else.
"""

import contextlib
import socket
import time
from typing import TypeVar

import msgspec
from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.messages import CoordinatorInfo, WorkerInfo

#: A worker or coordinator not heard from for this long is listed as dead.
DEAD_AFTER_S = 10.0

Info = TypeVar("Info", WorkerInfo, CoordinatorInfo)


async def read(redis: Redis, key: str, kind: type[Info]) -> list[tuple[Info, bool]]:
    """Every record in the heartbeat hash ``key`` with whether it is alive (recent, and not stopped); a
    record that does not decode is skipped."""
    now, found = time.time(), []
    for raw in (await redis.hgetall(key)).values():
        with contextlib.suppress(msgspec.DecodeError):
            info = msgspec.json.decode(raw, type=kind)
            stopped = isinstance(info, WorkerInfo) and info.stopped  # a worker that crashed says so
            found.append((info, not stopped and now - info.seen < DEAD_AFTER_S))
    return found


async def alive_here(redis: Redis, role: str) -> bool:
    """Whether a ``role`` ("worker" or "coordinator") process on this host sent a recent heartbeat."""
    key, kind = (keys.WORKERS, WorkerInfo) if role == "worker" else (keys.COORDINATORS, CoordinatorInfo)
    host = socket.gethostname()
    return any(alive and info.host == host for info, alive in await read(redis, key, kind))
