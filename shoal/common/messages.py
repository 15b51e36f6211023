"""The messages that cross Redis: msgspec Structs encoded as msgpack, each with a version field.

Nothing here is ever pickled. A payload that does not decode into the expected Struct, or carries
another version, raises :class:`MessageError` with the reason, and the caller rejects it. A field added
with a default keeps the version (older readers ignore it, newer ones default it); VERSION changes
when a message's meaning does.
"""

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

VERSION = 1


class MessageError(ValueError):
    """A payload from Redis that is not a valid shoal message."""


class Message(msgspec.Struct, kw_only=True):
    v: int = VERSION


class SessionConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One sid of a crawl: what kind of session, with which arguments."""

    kind: str  # "http", "dynamic" or "stealth"
    kwargs: dict[str, Any] = {}
    lazy: bool = False


class CrawlSpec(Message, kw_only=True):
    """A registered crawl: enough for any process to rebuild the spider and its sessions."""

    crawl: str
    name: str
    class_name: str
    source: str
    filename: str = "<spider>"
    args: dict[str, Any] = {}
    sessions: dict[str, SessionConfig]
    default_sid: str


class Submission(Message, kw_only=True):
    """A crawl submitted by a client: the spider's module source, which class, its arguments."""

    crawl: str
    source: str
    filename: str = "<spider>"
    spider: str = ""  # class or spider name; empty when the source defines one spider
    args: dict[str, Any] = {}
    submitted: float = 0.0


class Event(Message, kw_only=True):
    """An entry of an events stream (keys.events, keys.WORKER_EVENTS): what changed, its new value, when."""

    what: str  # "state" or "control" of a crawl; "worker": a worker registered
    value: str  # the new state, what the client asked (run, pause, cancel), or the worker's id
    time: float


class WorkerInfo(msgspec.Struct, kw_only=True):
    """A worker's heartbeat record: what it serves and when it was last seen alive."""

    id: str
    kind: str
    sids: list[str]  # empty: every sid of its kind
    capacity: int
    pid: int
    host: str
    version: str
    started: float
    seen: float
    held: int = 0
    fetched: int = 0
    rss: int = 0
    stopped: str = ""  # why it stopped, when it crashed (its record then stays: it is listed as dead)


class CoordinatorInfo(msgspec.Struct, kw_only=True):
    """A coordinator's heartbeat record: the crawls it owns and when it was last seen alive."""

    id: str
    host: str
    pid: int
    version: str
    started: float
    seen: float
    crawls: list[str] = []


class RequestRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A Request as it waits in the frontier and travels to a worker: callbacks by name."""

    url: str
    sid: str
    callback: str = ""
    priority: int = 0
    dont_filter: bool = False
    meta: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    retries: int = 0
    fp: bytes = b""
    escalated: bool = False  # a retry moved to a costlier sid after a block
    robots_txt: bool = False  # the domain's robots.txt, fetched for the coordinator: no callback runs


class FetchJob(Message, kw_only=True):
    """A request handed to a worker pool."""

    crawl: str
    request: RequestRecord


class FetchError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Why a fetch produced no response: ``kind`` is a short word (timeout, connection, invalid...)."""

    kind: str
    message: str


class FetchResult(Message, kw_only=True):
    """What a worker returns for a job: the response, or the error that replaced it."""

    crawl: str
    request: RequestRecord
    url: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = []
    cookies: dict[str, str] = {}
    body: bytes = b""
    elapsed: float = 0.0
    meta: dict[str, Any] = {}
    worker: str = ""
    error: FetchError | None = None


class FailedRequest(Message, kw_only=True):
    """A request whose fetch failed after its retries, kept until it is retried: what failed, how, when."""

    request: RequestRecord
    kind: str  # FetchError.kind: timeout, connection, dns, redirect, too_large, invalid, ...
    message: str
    time: float  # seconds since the epoch


S = TypeVar("S", bound=msgspec.Struct)

#: arq's job (de)serializers wherever shoal uses arq: msgpack through msgspec, never pickle.
ARQ_SERIALIZERS: dict[str, Any] = {"job_serializer": msgspec.msgpack.encode, "job_deserializer": msgspec.msgpack.decode}


def plain(value: Any) -> Any:
    """msgspec's enc_hook: Scrapling's selector results (TextHandler, a str; AttributesHandler, a Mapping) as
    plain str and dict, so that what a callback selects can go into meta and items as it is."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    kind = type(value)
    raise TypeError(f"a {kind.__module__}.{kind.__qualname__} cannot travel as msgpack or JSON")


_encoder = msgspec.msgpack.Encoder(enc_hook=plain)
_decoders: dict[type, msgspec.msgpack.Decoder] = {}


def encode(message: msgspec.Struct) -> bytes:
    """Encode a message as msgpack."""
    return _encoder.encode(message)


def decode(data: bytes, kind: type[S]) -> S:
    """Decode ``data`` into ``kind``; raises MessageError naming what is wrong."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.msgpack.Decoder(kind)
    try:
        message = decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise MessageError(f"not a valid {kind.__name__} message: {e}") from None
    if isinstance(message, Message) and message.v != VERSION:
        raise MessageError(f"{kind.__name__} has version {message.v}, this shoal reads version {VERSION}")
    return message
