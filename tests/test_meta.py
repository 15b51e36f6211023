"""Request meta comes back exactly as the spider gave it, types and all, or is refused when yielded."""

import datetime
import enum
import uuid
from collections import OrderedDict
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from shoal.common.messages import FetchResult, RequestRecord, decode, encode
from shoal.common.meta import from_wire, to_wire
from shoal.spiders import Request, Response, Spider
from tests.faulty_site import closed_port

PARIS = ZoneInfo("Europe/Paris")
META = {
    "pair": (1, "a"),
    "tags": {"x", "y"},
    "frozen": frozenset({1, 2}),
    "naive": datetime.datetime(2026, 3, 29, 2, 30, 15, 123456),
    "utc": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    "offset": datetime.datetime(2026, 1, 1, 8, tzinfo=datetime.timezone(datetime.timedelta(hours=-3, minutes=-30))),
    "named": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1), "CET")),
    "zoned": datetime.datetime(2026, 10, 25, 2, 30, tzinfo=PARIS, fold=1),
    "day": datetime.date(2026, 2, 28),
    "clock": datetime.time(23, 59, 59, 999999, tzinfo=datetime.UTC),
    "price": Decimal("19.990"),
    "nan": Decimal("NaN"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "nested": {"deep": [({"a": (1, 2)}, {frozenset({"k"})}), None], 7: b"\x00"},
    "plain": ["s", 1, 2.5, True, None, b"bytes", {"d": {}}],
}


def same(left, right) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 == True, [] == () would hide a change)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(value, right[key]) for key, value in left.items())
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, datetime.datetime | datetime.time):
        return left == right and left.tzinfo == right.tzinfo and left.fold == right.fold and str(left) == str(right)
    if isinstance(left, Decimal):
        return str(left) == str(right)
    return left == right


def test_meta_values_msgpack_lacks_come_back_through_a_worker_message_as_the_same_types():
    record = RequestRecord(url="https://e.test/", sid="http", meta=to_wire(META))
    travelled = decode(encode(FetchResult(crawl="c", request=record)), FetchResult)  # a worker passes it on
    again = decode(encode(travelled), FetchResult).request  # and the coordinator may store it again
    assert same(from_wire(again.meta), META)


class Color(enum.Enum):
    RED = 1


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"color": Color.RED}, "meta['color'] is a tests.test_meta.Color, which cannot travel"),
        ({"a": [1, object()]}, "meta['a'][1] is a builtins.object, which cannot travel"),
        ({"o": OrderedDict(a=1)}, "meta['o'] is a collections.OrderedDict, which cannot travel"),
        ({"big": 2**64}, "meta['big'] is an int too large for msgpack"),
        ({"k": {(1, 2): "v"}}, "meta['k'] has a key of type tuple ((1, 2))"),
        ({"t": datetime.datetime(2026, 1, 1, tzinfo=datetime.tzinfo())}, "meta['t'] has tzinfo tzinfo"),
    ],
    ids=["enum", "object", "dict subclass", "huge int", "tuple key", "other tzinfo"],
)
def test_a_meta_value_that_cannot_come_back_exactly_is_an_error_naming_its_key_and_type(meta, message):
    with pytest.raises(TypeError) as refused:
        to_wire(meta)
    assert str(refused.value).startswith(message)


class MetaSpider(Spider):
    name = "meta"
    logging_level = 50

    def __init__(self, base: str):
        self.base = base
        self.received: list[dict] = []
        self.errors: list[str] = []
        super().__init__()

    async def start_requests(self):
        yield Request(f"{self.base}/echo?n=1", meta=dict(META))
        yield Request(f"http://127.0.0.1:{closed_port()}/", meta=dict(META), retries=0)
        yield Request(f"{self.base}/echo?n=2", meta={"color": Color.RED})

    async def parse(self, response: Response):
        self.received.append(response.meta)
        yield response.follow("/echo?n=3", callback=self.parse_followed, meta={"from": response.meta["pair"]})

    async def parse_followed(self, response: Response):
        self.received.append(response.meta)
        yield {"ok": True}

    async def on_error(self, request, error):
        self.errors.append(str(error))


def test_meta_reaches_callbacks_and_failed_requests_as_yielded_and_a_bad_one_is_refused_naming_it(shop, redis_url):
    spider = MetaSpider(shop.url)
    result = spider.start(redis_url=redis_url)
    first, followed = spider.received
    assert same({key: first[key] for key in META}, META)
    assert same(followed["from"], (1, "a"))
    (failed,) = result.failed
    assert same(failed.request.meta, META)
    assert any("meta['color'] is a tests.test_meta.Color, which cannot travel" in error for error in spider.errors)
    assert result.stats.failed_requests_by_kind == {"connection": 1, "rejected": 1}
