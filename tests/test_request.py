"""Request and its fingerprint follow Scrapling's rules."""

from io import BytesIO

import pytest

from shoal.spiders import Request


def fp(request: Request, **options: bool) -> bytes:
    return request.update_fingerprint(**options)


def test_defaults_match_scrapling():
    request = Request("https://example.com/a")
    assert (request.sid, request.callback, request.priority) == ("", None, 0)
    assert (request.dont_filter, request.meta) == (False, {})
    assert request.session_kwargs == {}
    assert request.domain == "example.com"


def test_extra_keyword_arguments_are_session_kwargs():
    request = Request("https://example.com", method="POST", data={"a": "1"}, wait_selector="div")
    assert request.session_kwargs == {"method": "POST", "data": {"a": "1"}, "wait_selector": "div"}


def test_copy_has_its_own_meta():
    request = Request("https://example.com", meta={"k": 1}, headers={"x": "1"})
    clone = request.copy()
    clone.meta["k"] = 2
    assert request.meta == {"k": 1}
    assert clone.session_kwargs == {"headers": {"x": "1"}}


def test_fingerprint_ignores_query_order_and_fragment():
    assert fp(Request("https://e.com/p?b=2&a=1#top")) == fp(Request("https://e.com/p?a=1&b=2"))


def test_fingerprint_keeps_fragment_when_asked():
    a, b = Request("https://e.com/p#one"), Request("https://e.com/p#two")
    assert fp(a, keep_fragments=True) != fp(b, keep_fragments=True)


def test_fingerprint_depends_on_sid_method_and_body():
    base = fp(Request("https://e.com/p"))
    assert fp(Request("https://e.com/p", sid="other")) != base
    assert fp(Request("https://e.com/p", method="POST")) != base
    assert fp(Request("https://e.com/p", method="POST", data={"a": "1"})) != fp(
        Request("https://e.com/p", method="POST", data={"a": "2"})
    )


def test_body_forms_that_encode_alike_fingerprint_alike():
    as_dict = Request("https://e.com/p", method="POST", data={"a": "1"})
    as_text = Request("https://e.com/p", method="POST", data="a=1")
    as_stream = Request("https://e.com/p", method="POST", data=BytesIO(b"a=1"))
    assert fp(as_dict) == fp(as_text) == fp(as_stream)


def test_params_count_as_part_of_the_url():
    assert fp(Request("https://e.com/p", params={"q": "x"})) == fp(Request("https://e.com/p?q=x"))


def test_kwargs_count_only_when_asked():
    a, b = Request("https://e.com/p", timeout=1), Request("https://e.com/p", timeout=2)
    assert fp(a) == fp(b)
    assert fp(a.copy(), include_kwargs=True) != fp(b.copy(), include_kwargs=True)


def test_headers_count_only_when_asked():
    a, b = Request("https://e.com/p", headers={"X-A": "1"}), Request("https://e.com/p", headers={"X-A": "2"})
    assert fp(a) == fp(b)
    assert fp(a.copy(), include_headers=True) != fp(b.copy(), include_headers=True)


def test_requests_compare_by_fingerprint_and_order_by_priority():
    a, b = Request("https://e.com/p?x=1&y=2", priority=1), Request("https://e.com/p?y=2&x=1")
    with pytest.raises(RuntimeError):
        _ = a == b
    fp(a), fp(b)
    assert a == b
    assert b < a and a > b


def test_retry_copy_is_counted_lowered_unfiltered_and_drops_the_proxy():
    request = Request("https://e.com", priority=5, proxy="http://p:1", proxies={"https": "x"}, headers={"a": "1"})
    retry = request.retry_copy()
    assert (retry.retry_count, retry.priority, retry.dont_filter) == (1, 4, True)
    assert retry.session_kwargs == {"headers": {"a": "1"}}
    assert request.session_kwargs["proxy"] == "http://p:1"
