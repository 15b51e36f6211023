"""Converting between the Requests a spider yields and the FetchJobs and RequestRecords that travel through Redis."""

from io import BytesIO
from typing import TYPE_CHECKING, Any

import msgspec

from shoal.common.messages import FetchJob, RequestRecord, encode, plain
from shoal.common.meta import from_wire, to_wire
from shoal.common.names import checked_method_name, method_name
from shoal.common.request import Request
from shoal.common.sessions import CALLABLE_ARGS

if TYPE_CHECKING:
    from shoal.spiders import Spider

#: Says whether request arguments can travel, once encoding their FetchJob failed.
_check = msgspec.msgpack.Encoder(enc_hook=plain)


def _portable(spider: "Spider", key: str, value: Any) -> Any:
    if callable(value):
        return method_name(spider, value, f"request argument '{key}'")
    if isinstance(value, str) and key in CALLABLE_ARGS:  # a method given by name: it must exist
        return checked_method_name(spider, value, key.replace("_", " "))
    if isinstance(value, BytesIO):
        return value.getvalue()
    return value


def to_job(crawl: str, request: Request, spider: "Spider", fp: bytes = b"", escalated: bool = False) -> bytes:
    """The FetchJob of ``request`` in crawl ``crawl``, encoded: callbacks and callables by name, values checked
    to be portable (a TypeError naming the request when its meta or its request arguments cannot travel)."""
    try:
        kwargs = {key: _portable(spider, key, value) for key, value in request.session_kwargs.items()}
    except ValueError as e:
        raise ValueError(f"{request!r}: {e}") from None
    callback = method_name(spider, request.callback, "callback") if request.callback else ""
    try:
        meta = to_wire(request.meta)
    except TypeError as e:
        raise TypeError(f"{request!r}: {e}") from None
    record = RequestRecord(
        url=request.url,
        sid=request.sid,
        callback=callback,
        priority=request.priority,
        dont_filter=request.dont_filter,
        meta=meta,
        kwargs=kwargs,
        retries=request.retry_count,
        fp=fp,
        escalated=escalated,
    )
    try:
        return encode(FetchJob(crawl=crawl, request=record))
    except (TypeError, OverflowError):
        try:  # meta went through to_wire: what cannot travel is in the request arguments, unless they can
            _check.encode(kwargs)
        except (TypeError, OverflowError) as error:
            raise TypeError(f"{request!r}: its request arguments cannot travel through Redis: {error}") from None
        raise


def from_record(record: RequestRecord, spider: "Spider") -> Request:
    """The Request a record stands for, with its callback resolved on ``spider``."""
    callback = getattr(spider, record.callback, None) if record.callback else None
    if record.callback and not callable(callback):
        raise LookupError(f"callback '{record.callback}' is not a method of {type(spider).__name__}")
    return Request(
        record.url,
        sid=record.sid,
        callback=callback,
        priority=record.priority,
        dont_filter=record.dont_filter,
        meta=from_wire(record.meta),
        _retry_count=record.retries,
        **record.kwargs,
    )
