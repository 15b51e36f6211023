"""Response: selectors, decoding, and follow() as current Scrapling defines it."""

from shoal.spiders import Request, Response

PAGE = b"""<html><head><title>Shop</title></head><body>
<h1>Widget</h1><span class="price">$9.50</span>
<a class="product" href="/p/1">one</a><a class="product" href="/p/2">two</a>
<a class="next" href="?page=2">next</a></body></html>"""


def make(body: bytes = PAGE, request: Request | None = None, **kwargs) -> Response:
    return Response("https://shop.test/list", body, headers={"Content-Type": "text/html"}, request=request, **kwargs)


async def parse(response):
    yield None


def test_css_text_attr_get_getall():
    response = make()
    assert response.css("h1::text").get() == "Widget"
    assert response.css("a.product::attr(href)").getall() == ["/p/1", "/p/2"]
    assert response.css("h2::text").get("") == ""
    assert response.xpath("//title/text()").get() == "Shop"


def test_re_and_re_first():
    response = make()
    assert response.css(".price::text").re(r"[\d.]+") == ["9.50"]
    assert response.css(".price::text").re_first(r"\$(\d+)") == "9"
    assert response.css("h1::text").re_first(r"nothing(\d)", default="none") == "none"


def test_headers_are_case_insensitive():
    response = make()
    assert response.headers["content-type"] == "text/html"
    assert response.headers.get("CONTENT-TYPE") == "text/html"
    assert "Content-Type" in response.headers


def test_text_decodes_declared_encoding():
    body = "<p>café</p>".encode("latin-1")
    response = Response("https://x.test", body, headers={"content-type": "text/html; charset=ISO-8859-1"})
    assert response.css("p::text").get() == "café"
    assert response.encoding == "cp1252"  # WHATWG maps latin-1 to windows-1252


def test_binary_body_does_not_break_selectors():
    response = Response(
        "https://x.test/bin", bytes(range(256)) * 4, headers={"content-type": "application/octet-stream"}
    )
    assert response.css("a::attr(href)").getall() == []


def test_urljoin_resolves_against_the_page():
    assert make().urljoin("?page=2") == "https://shop.test/list?page=2"


def test_follow_inherits_sid_callback_priority_when_not_given():
    request = Request("https://shop.test/list", sid="stealth", callback=parse, priority=3)
    followed = make(request=request).follow("/p/1")
    assert (followed.url, followed.sid, followed.callback, followed.priority) == (
        "https://shop.test/p/1",
        "stealth",
        parse,
        3,
    )
    assert followed.dont_filter is False


def test_follow_arguments_win_over_inherited_ones():
    request = Request("https://shop.test/list", sid="a", priority=3, impersonate="chrome", timeout=5)
    followed = make(request=request).follow("/p/1", sid="b", priority=0, impersonate="chrome131_android")
    assert (followed.sid, followed.priority) == ("b", 0)
    assert followed.session_kwargs["impersonate"] == "chrome131_android"
    assert followed.session_kwargs["timeout"] == 5


def test_follow_is_a_get_unless_method_and_body_are_given_again():
    request = Request("https://shop.test/form", method="POST", data={"a": "1"}, json={"b": 2}, params={"q": "x"})
    followed = make(request=request).follow("/next")
    for name in ("method", "data", "json", "params", "files", "multipart"):
        assert name not in followed.session_kwargs


def test_follow_drops_inherited_content_length_and_never_mutates_the_parent():
    headers = {"Content-Length": "10", "X-Token": "t"}
    request = Request("https://shop.test/form", headers=headers, extra_headers={"content-length": "3"})
    followed = make(request=request).follow("/next")
    assert followed.session_kwargs["headers"] == {"X-Token": "t", "referer": "https://shop.test/list"}
    assert followed.session_kwargs["extra_headers"] == {"referer": "https://shop.test/list"}
    assert headers == {"Content-Length": "10", "X-Token": "t"}
    assert request.session_kwargs["extra_headers"] == {"content-length": "3"}


def test_referer_flow_sets_referer_for_http_and_browsers_and_turns_off_google_search():
    followed = make(request=Request("https://shop.test/list", google_search=True)).follow("/p/1")
    assert followed.session_kwargs["headers"]["referer"] == "https://shop.test/list"
    assert followed.session_kwargs["extra_headers"]["referer"] == "https://shop.test/list"
    assert followed.session_kwargs["google_search"] is False


def test_follow_without_referer_flow_adds_nothing():
    followed = make(request=Request("https://shop.test/list")).follow("/p/1", referer_flow=False)
    assert followed.session_kwargs == {}


def test_follow_merges_meta_with_new_keys_winning():
    response = make(request=Request("https://shop.test/list"), meta={"a": 1, "b": 1})
    assert response.follow("/p", meta={"b": 2}).meta == {"a": 1, "b": 2}
    assert response.meta == {"a": 1, "b": 1}


def test_follow_needs_a_request():
    import pytest

    with pytest.raises(TypeError, match="no request"):
        make().follow("/p/1")


CATALOG = b"""<html><head><title>Catalog</title></head><body>
<div class="products">
  <article class="product" data-id="1"><h3>Lamp</h3><span class="price">  $10.00 </span></article>
  <article class="product" data-id="2"><h3>Desk</h3><span class="price">$99.50</span></article>
  <article class="product" data-id="3"><h3>Chair</h3><span class="price">$45.00</span></article>
</div>
<p id="note">Free   shipping &amp; returns</p>
<script>var ignored = 1;</script>
</body></html>"""


def catalog() -> Response:
    return Response("https://shop.test/catalog", CATALOG, headers={"Content-Type": "text/html"})


def test_scraplings_element_api_text_first_attrib_and_get_all_text():
    response = catalog()
    first = response.css("article.product").first
    assert first.attrib["data-id"] == "1" and first["data-id"] == "1"
    assert first.css("h3").first.text == "Lamp"
    assert response.css("article.product").last.css("h3::text").get() == "Chair"
    assert first.get_all_text(separator=" ", strip=True) == "Lamp $10.00"
    assert "ignored" not in response.get_all_text()  # script text is left out
    assert response.css("#note::text").get().clean() == "Free shipping & returns"
    assert response.css("span.price::text").re_first(r"\$([\d.]+)") == "10.00"


def test_scraplings_find_methods_and_similar_elements():
    response = catalog()
    assert [p.attrib["data-id"] for p in response.find_all("article", class_="product")] == ["1", "2", "3"]
    assert response.find("article", {"data-id": "2"}).css("h3::text").get() == "Desk"
    assert response.find_by_text("Chair").tag == "h3"
    assert response.find_by_regex(r"\$99").text == "$99.50"
    similar = response.css("article.product").first.find_similar()
    assert [p.attrib["data-id"] for p in similar] == ["2", "3"]
    assert [e.tag for e in response.css("article.product").first.below_elements] == ["h3", "span"]


def test_json_body_and_scraplings_constructor_arguments():
    response = Response(
        url="https://api.test/items",
        content=b'{"items": [1, 2]}',
        status=201,
        reason="Created",
        cookies={"s": "1"},
        headers={"Content-Type": "application/json"},
        request_headers={"Accept": "application/json"},
    )
    assert response.json() == {"items": [1, 2]}
    assert (response.status, response.reason, response.cookies) == (201, "Created", {"s": "1"})
    assert response.request_headers == {"Accept": "application/json"}
    assert response.body == b'{"items": [1, 2]}'


def test_bodies_without_any_element_and_utf16_bodies_parse():
    for body in (b"", b"   ", b"<!-- only a comment -->", b"<!DOCTYPE html>"):
        response = Response("https://x.test", body)
        assert response.css("p::text").get() is None and response.body == body
    utf16 = "<p>héllo</p>".encode("utf-16")
    response = Response("https://x.test", utf16)
    assert response.css("p::text").get() == "héllo"
    assert response.encoding == "utf-16-le" and response.body == utf16


def test_markdown_of_the_page_leaves_out_scripts():
    markdown = catalog().markdown(main_content_only=True)
    assert "### Lamp" in markdown and "ignored" not in markdown
