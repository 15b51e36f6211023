"""Request meta on the wire: every value comes back as the type it was, or is refused when yielded.

msgpack has no tuple, set, datetime or Decimal: msgspec would send a tuple as a list and a datetime
as a string, silently. So ``to_wire`` turns the types below into msgpack extension types (a code and
a msgpack payload, nested values included), and ``from_wire`` turns them back; any other type (a
subclass such as OrderedDict or an Enum included) is a TypeError naming the meta key and the type.
Workers and Redis carry the extension values untouched; only the coordinator converts them.

The codes are part of the wire format (messages.VERSION): a code is never reused for another type.
"""

import datetime
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from scrapling.core.custom_types import AttributesHandler, TextHandler, TextHandlers

_TUPLE, _SET, _FROZENSET, _DATETIME, _DATE, _TIME, _DECIMAL, _UUID = range(1, 9)
#: Scrapling's selector results (what ``css``/``xpath``/``attrib`` give), as they were selected.
_TEXT, _TEXTS, _ATTRIBUTES = range(9, 12)
#: Types that msgpack carries as they are.
_PLAIN = (str, int, float, bool, type(None), bytes)
#: The meta value types that travel, for error messages.
SUPPORTED = (
    "str, int, float, bool, None, bytes, list, dict (with str, int, float, bool, None or bytes keys), "
    "tuple, set, frozenset, datetime, date, time (naive, datetime.timezone or zoneinfo.ZoneInfo), Decimal, UUID, "
    "and Scrapling's selector results (TextHandler, TextHandlers, AttributesHandler)"
)
_encode = msgspec.msgpack.Encoder().encode


def _tz(value: datetime.datetime | datetime.time, where: str) -> Any:
    tz = value.tzinfo
    if tz is None:
        return None
    if isinstance(tz, ZoneInfo):
        return tz.key
    if type(tz) is datetime.timezone:
        offset = tz.utcoffset(None)
        return [offset // datetime.timedelta(microseconds=1), tz.tzname(None)]
    raise TypeError(f"{where} has tzinfo {type(tz).__name__}: use datetime.timezone or zoneinfo.ZoneInfo")


def _tzinfo(spec: Any) -> datetime.tzinfo | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        return ZoneInfo(spec)
    offset = datetime.timedelta(microseconds=spec[0])
    unnamed = datetime.timezone(offset)
    return unnamed if unnamed.tzname(None) == spec[1] else datetime.timezone(offset, spec[1])


def _ext(code: int, payload: Any) -> msgspec.msgpack.Ext:
    return msgspec.msgpack.Ext(code, _encode(payload))


def _wire(value: Any, where: str) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        if kind is int and not -(2**63) <= value < 2**64:
            raise TypeError(f"{where} is an int too large for msgpack (64 bits)")
        return value
    if kind is list:
        return [_wire(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if kind is dict:
        return _wire_dict(value, where)
    if kind in (tuple, set, frozenset):
        code = {tuple: _TUPLE, set: _SET, frozenset: _FROZENSET}[kind]
        return _ext(code, [_wire(item, f"{where}[{i}]") for i, item in enumerate(value)])
    if kind is datetime.datetime:
        return _ext(_DATETIME, [value.replace(tzinfo=None).isoformat(), _tz(value, where), value.fold])
    if kind is datetime.date:
        return _ext(_DATE, value.isoformat())
    if kind is datetime.time:
        return _ext(_TIME, [value.replace(tzinfo=None).isoformat(), _tz(value, where), value.fold])
    if kind is Decimal:
        return _ext(_DECIMAL, str(value))
    if kind is uuid.UUID:
        return _ext(_UUID, value.bytes)
    if kind is TextHandler:
        return _ext(_TEXT, str(value))
    if kind is TextHandlers:
        return _ext(_TEXTS, [_wire(item, f"{where}[{i}]") for i, item in enumerate(value)])
    if kind is AttributesHandler:
        return _ext(_ATTRIBUTES, _wire_dict(dict(value), where))
    raise TypeError(f"{where} is a {kind.__module__}.{kind.__qualname__}, which cannot travel (meta takes {SUPPORTED})")


def _wire_dict(value: dict, where: str) -> dict:
    wired = {}
    for key, item in value.items():
        if type(key) not in _PLAIN:
            raise TypeError(f"{where} has a key of type {type(key).__qualname__} ({key!r}): keys must be plain values")
        wired[key] = _wire(item, f"{where}[{key!r}]")
    return wired


def to_wire(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` ready for msgpack: types msgpack lacks as extension values; TypeError naming the key otherwise."""
    return _wire_dict(meta, "meta")


def _from_ext(ext: msgspec.msgpack.Ext) -> Any:
    payload = msgspec.msgpack.decode(ext.data)
    decoder = _DECODERS.get(ext.code)
    if decoder is None:
        raise ValueError(f"meta holds an extension value of unknown code {ext.code} (written by a newer shoal?)")
    return decoder(payload)


def _local(value: Any) -> Any:
    if isinstance(value, msgspec.msgpack.Ext):
        return _from_ext(value)
    if type(value) is list:
        return [_local(item) for item in value]
    if type(value) is dict:
        return {key: _local(item) for key, item in value.items()}
    return value


def _datetime(payload: list) -> datetime.datetime:
    return datetime.datetime.fromisoformat(payload[0]).replace(tzinfo=_tzinfo(payload[1]), fold=payload[2])


def _time(payload: list) -> datetime.time:
    return datetime.time.fromisoformat(payload[0]).replace(tzinfo=_tzinfo(payload[1]), fold=payload[2])


_DECODERS: dict[int, Callable[[Any], Any]] = {
    _TUPLE: lambda items: tuple(_local(item) for item in items),
    _SET: lambda items: {_local(item) for item in items},
    _FROZENSET: lambda items: frozenset(_local(item) for item in items),
    _DATETIME: _datetime,
    _DATE: datetime.date.fromisoformat,
    _TIME: _time,
    _DECIMAL: Decimal,
    _UUID: lambda data: uuid.UUID(bytes=data),
    _TEXT: TextHandler,
    _TEXTS: lambda items: TextHandlers(_local(item) for item in items),
    _ATTRIBUTES: lambda mapping: AttributesHandler(_local(mapping)),
}


def from_wire(meta: dict[str, Any]) -> dict[str, Any]:
    """The meta ``to_wire`` was given, from what msgpack decoded (a new dict; nested values new too)."""
    return _local(meta)
