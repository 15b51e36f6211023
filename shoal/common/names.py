"""Names: callables travel through Redis by name (spider methods only, resolved again on the other side),
and a misspelled name gets a hint."""

import difflib
from collections.abc import Callable, Iterable
from typing import Any


def method_name(spider: object, value: Callable[..., Any], what: str) -> str:
    """The name under which ``value`` is a method of ``spider``; ValueError when it is not one."""
    name = getattr(value, "__name__", "")
    bound = getattr(spider, name, None) if name and not name.startswith("<") else None
    if bound is None or getattr(bound, "__func__", bound) is not getattr(value, "__func__", value):
        raise ValueError(f"{what} must be a method of the spider (it travels by name), got {value!r}")
    return name


def resolve_method(spider: object, name: str, what: str) -> Callable[..., Any]:
    """The method ``name`` of ``spider``; LookupError naming ``what`` when the spider has none."""
    method = getattr(spider, name, None) if not name.startswith("_") else None
    if not callable(method):
        raise LookupError(f"{what} '{name}' is not a method of {type(spider).__name__}")
    return method


def checked_method_name(spider: object, name: str, what: str) -> str:
    """``name`` when it names a method of ``spider``; ValueError naming ``what`` when it does not."""
    try:
        resolve_method(spider, name, what)
    except LookupError as e:
        raise ValueError(str(e)) from None
    return name


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """ " (did you mean 'X'?)" with the known name closest to a misspelled ``name``; "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
