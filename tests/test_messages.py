"""Wire messages round-trip through msgpack, and anything else is rejected with a reason."""

import msgspec
import pytest

from shoal.common.messages import (
    CrawlSpec,
    FetchError,
    FetchJob,
    FetchResult,
    MessageError,
    RequestRecord,
    SessionConfig,
    decode,
    encode,
)

RECORD = RequestRecord(
    url="https://e.com/p",
    sid="http",
    callback="parse_product",
    priority=2,
    meta={"k": [1, "x"]},
    kwargs={"headers": {"a": "b"}, "data": b"\x00\x01"},
    retries=1,
    fp=b"\x01" * 20,
)


@pytest.mark.parametrize(
    "message",
    [
        FetchJob(crawl="c1", request=RECORD),
        FetchResult(
            crawl="c1",
            request=RECORD,
            url="https://e.com/p",
            status=200,
            headers=[("a", "b")],
            body=b"\xff\xfe binary",
            elapsed=0.1,
            meta={"proxy": "http://p"},
        ),
        FetchResult(crawl="c1", request=RECORD, error=FetchError(kind="timeout", message="slow")),
        CrawlSpec(
            crawl="c1",
            name="s",
            class_name="S",
            source="x = 1",
            sessions={
                "http": SessionConfig(kind="http", kwargs={"impersonate": "chrome"}),
                "stealth": SessionConfig(kind="stealth", lazy=True),
            },
            default_sid="http",
        ),
    ],
)
def test_messages_round_trip(message):
    assert decode(encode(message), type(message)) == message


def test_messages_carry_a_version_readable_by_field_name():
    raw = msgspec.msgpack.decode(encode(FetchJob(crawl="c1", request=RECORD)))
    assert raw["v"] == 1 and raw["crawl"] == "c1" and raw["request"]["url"] == "https://e.com/p"


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xc1garbage", "not a valid FetchJob"),
        (msgspec.msgpack.encode({"v": 1, "crawl": "c1"}), "request"),
        (msgspec.msgpack.encode(["a", "list"]), "not a valid FetchJob"),
        (b"\x80\x04\x95 pickle bytes", "not a valid FetchJob"),
    ],
)
def test_bytes_that_are_not_a_message_raise_message_error_with_reason(payload, reason):
    with pytest.raises(MessageError, match=reason):
        decode(payload, FetchJob)


def test_a_future_version_is_refused():
    payload = msgspec.msgpack.encode({"v": 2, "crawl": "c1", "request": {"url": "u", "sid": "s"}})
    with pytest.raises(MessageError, match="version 2"):
        decode(payload, FetchJob)
