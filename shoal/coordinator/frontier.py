"""The frontier entry: the one definition of its bytes, and what a commit puts into the frontier.

A sid's frontier is a sorted set whose members are all scored 0, so Redis orders them by bytes:
``16 hex digits of (2**63 - 1 - priority)`` + ``17-digit sequence`` + ``domain`` + ``\\n`` + job.
Higher priority sorts first, then FIFO. Python builds the prefix and the tail; the Lua scripts insert
the sequence number (taken from a counter in the same step) and find the domain and the job through
``SEQUENCE_FORMAT``, ``DOMAIN_AT`` and ``DOMAIN_END``, passed to them as ARGV.
"""

from collections.abc import Sequence
from dataclasses import dataclass

_PRIORITY_DIGITS = 16
_SEQUENCE_DIGITS = 17
_MAX_PRIORITY = 2**63 - 1
#: The format of an entry's sequence number (Lua's string.format and Python's % read it alike).
SEQUENCE_FORMAT = f"%0{_SEQUENCE_DIGITS}d"
#: Where an entry's domain starts (0-based; Lua, counting from 1, is given DOMAIN_AT + 1), and what ends it.
DOMAIN_AT = _PRIORITY_DIGITS + _SEQUENCE_DIGITS
DOMAIN_END = b"\n"


def frontier_member(priority: int, domain: str, job: bytes) -> tuple[bytes, bytes]:
    """The priority prefix and the tail (domain, newline, job) of a frontier entry."""
    if not -_MAX_PRIORITY <= priority <= _MAX_PRIORITY:
        raise ValueError(f"priority {priority} is out of range (a 64-bit integer)")
    return b"%0*x" % (_PRIORITY_DIGITS, _MAX_PRIORITY - priority), domain.encode() + DOMAIN_END + job


def domain_and_job(entry: bytes) -> tuple[str, bytes]:
    """The domain and the job of a frontier entry (they follow its priority and sequence digits)."""
    domain, _, job = entry[DOMAIN_AT:].partition(DOMAIN_END)
    return domain.decode(), job


@dataclass(slots=True)
class Scheduled:
    """A request ready for the frontier: its sid, fingerprint, and encoded entry."""

    sid: str
    fp: bytes
    dont_filter: bool
    prefix: bytes
    tail: bytes
    key: str = ""  # the sorted set it goes to when not its sid's frontier (replay, held for robots.txt, disallowed)


def entry(sid: str, fp: bytes, priority: int, domain: str, job: bytes, dont_filter: bool = False) -> Scheduled:
    """The frontier entry of an encoded FetchJob ``job`` to ``domain`` through ``sid``."""
    prefix, tail = frontier_member(priority, domain, job)
    return Scheduled(sid, fp, dont_filter, prefix, tail)


@dataclass(slots=True)
class Commit:
    """What processing one response produced, to be stored atomically with its acknowledgement."""

    response_id: str = ""
    sid: str = ""
    domain: str = ""
    requests: Sequence[Scheduled] = ()
    items: Sequence[bytes] = ()
    stats: dict[str, int] | None = None
    failed: bytes = b""  # a FailedRequest when the fetch failed
