"""The Lua scripts shoal runs in Redis, each in its own file under ``shoal/store/lua/``.

Every state change of a crawl that touches several keys is one script, so it happens whole or not at
all. Each file starts with a comment saying what it does and what its KEYS and ARGV hold.
"""

from functools import cache
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


@cache
def source(name: str) -> str:
    """The text of script ``name`` (``shoal/store/lua/<name>.lua``); FileNotFoundError naming it if none."""
    path = resources.files(__package__).joinpath("lua", f"{name}.lua")
    if not path.is_file():
        raise FileNotFoundError(f"no Lua script '{name}' ({path} does not exist)")
    return path.read_text(encoding="utf-8")


def register(redis: Redis, name: str) -> AsyncScript:
    """Script ``name`` registered on ``redis``: call it with ``keys=`` and ``args=``."""
    return redis.register_script(source(name))
