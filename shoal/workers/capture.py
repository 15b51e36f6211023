"""What a browser fetch takes from its page: the HTML with open shadow roots (``pierce_shadow``), and the
requests the page made while it loaded (``record_requests``).
"""

from collections import deque
from typing import Any

#: The page's HTML with each open shadow root's content in a ``<shadow-root>`` element first in its host
#: (as Scrapling writes it), a slot showing the light nodes assigned to it; null when the page has no
#: open shadow root. Closed shadow roots are not readable from the page, so they stay out.
_PIERCED_HTML = r"""
() => {
  if (!Array.prototype.some.call(document.querySelectorAll("*"), (element) => element.shadowRoot)) return null;
  const out = document.implementation.createHTMLDocument("");
  const copyInto = (target, nodes) => { for (const node of nodes) target.appendChild(copy(node)); };
  function copy(node) {
    const clone = out.importNode(node, false);
    if (node.nodeType !== Node.ELEMENT_NODE) return clone;
    if (node instanceof HTMLTemplateElement) {
      clone.content.appendChild(out.importNode(node.content, true));
    } else if (node.shadowRoot) {
      const root = out.createElement("shadow-root");
      copyInto(root, node.shadowRoot.childNodes);
      clone.appendChild(root);
    } else if (node instanceof HTMLSlotElement && node.getRootNode() instanceof ShadowRoot) {
      const assigned = node.assignedNodes();
      copyInto(clone, assigned.length ? assigned : node.childNodes);
    } else {
      copyInto(clone, node.childNodes);
    }
    return clone;
  }
  const doctype = document.doctype ? new XMLSerializer().serializeToString(document.doctype) : "";
  return doctype + copy(document.documentElement).outerHTML;
}
"""

#: A recorded response keeps its body when it is text of at most this many bytes (as in Scrapling) ...
MAX_RECORDED_BODY = 2**20
#: ... while the bodies of one page's recorded requests stay under this many bytes in all.
MAX_RECORDED_BODIES = 20 * 2**20
_TEXT_TYPES = ("text/", "json", "javascript", "xml", "x-www-form-urlencoded")


async def page_html(page: Any, pierce_shadow: bool) -> str:
    """The rendered page's HTML; with ``pierce_shadow``, open shadow roots included."""
    if pierce_shadow and (pierced := await page.evaluate(_PIERCED_HTML)):
        return pierced
    return await page.content()


class RequestRecorder:
    """Records the requests a page completes while it is attached (the newest ``limit`` of them)."""

    def __init__(self, page: Any, limit: int) -> None:
        self.page = page
        self.finished: deque[Any] = deque(maxlen=limit)
        self.dropped = 0
        page.on("requestfinished", self._finished)

    def _finished(self, request: Any) -> None:
        if len(self.finished) == self.finished.maxlen:
            self.dropped += 1
        self.finished.append(request)

    def detach(self) -> None:
        self.page.remove_listener("requestfinished", self._finished)

    async def records(self) -> list[dict[str, Any]]:
        """One dict per recorded request, oldest first: url, method, resource_type, status, headers,
        request_body, and the body when it is text small enough to keep (else body_note says why not)."""
        self.detach()
        records, budget = [], MAX_RECORDED_BODIES
        for request in self.finished:
            response = await request.response()
            if response is None:
                continue
            headers = await response.all_headers()
            record = {
                "url": request.url,
                "method": request.method,
                "resource_type": request.resource_type,
                "status": response.status,
                "headers": headers,
                "request_body": request.post_data_buffer,
            }
            if not any(kind in headers.get("content-type", "") for kind in _TEXT_TYPES):
                record["body_note"] = "not text: not kept"
            else:
                try:
                    body = await response.body()
                except Exception as e:  # the browser no longer has it (a redirect, an evicted resource)
                    record["body_note"] = f"unavailable: {str(e).splitlines()[0]}"
                else:
                    if len(body) > min(MAX_RECORDED_BODY, budget):
                        record["body_note"] = f"{len(body)} bytes: over the limit, not kept"
                    else:
                        record["body"] = body
                        budget -= len(body)
            records.append(record)
        return records
