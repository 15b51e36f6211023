"""development_mode's response cache: fetched responses on the coordinator's disk, replayed by fingerprint.

As in Scrapling, a spider with ``development_mode = True`` stores every response it gets (except
blocked ones) under ``development_cache_dir`` (default ``.scrapling_cache/<spider name>``), one file
per request fingerprint, and a later run answers those requests from the files: no worker and no
site is involved, so parsing code can be changed and run again quickly.
"""

import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from shoal.common.messages import FetchResult, RequestRecord

#: The ``worker`` a replayed response names (it shows in ``stats.workers_requests_count``).
CACHE_WORKER = "cache"


class CachedResponse(msgspec.Struct, kw_only=True):
    url: str
    status: int
    reason: str = ""
    headers: list[tuple[str, str]] = []
    cookies: dict[str, str] = {}
    body: bytes = b""
    meta: dict[str, Any] = {}


_decoder = msgspec.msgpack.Decoder(CachedResponse)


class ResponseCache:
    """Responses by request fingerprint, one msgpack file each under ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, fp: bytes) -> Path:
        return self.directory / f"{fp.hex()}.msgpack"

    def has(self, fp: bytes) -> bool:
        return self._path(fp).exists()

    def replay(self, crawl: str, request: RequestRecord) -> FetchResult | None:
        """The cached response to ``request`` as a worker would have returned it; None if there is none."""
        try:
            cached = _decoder.decode(self._path(request.fp).read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        return FetchResult(crawl=crawl, request=request, worker=CACHE_WORKER, **msgspec.structs.asdict(cached))

    def put(self, result: FetchResult) -> None:
        """Store a fetched response under its request's fingerprint (written whole, or not at all)."""
        cached = CachedResponse(
            url=result.url,
            status=result.status,
            reason=result.reason,
            headers=result.headers,
            cookies=result.cookies,
            body=result.body,
            meta=result.meta,
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(handle, "wb") as f:
            f.write(msgspec.msgpack.encode(cached))
        os.replace(temporary, self._path(result.request.fp))
