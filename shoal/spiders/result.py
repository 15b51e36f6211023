"""What a crawl produces: its items (with exports), its statistics, and the result of a run."""

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ElementTree, SubElement
from xml.etree.ElementTree import indent as indent_tree

import msgspec

_XML_FORBIDDEN_CHARS = re.compile(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_TAG_CHARS = re.compile(r"[^\w.-]")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return msgspec.json.encode(value).decode()
    return str(value)


def _xml_tag(key: Any) -> str:
    tag = _XML_TAG_CHARS.sub("_", str(key))
    return tag if tag and (tag[0].isalpha() or tag[0] == "_") else f"_{tag}"


def _target(path: str | Path) -> Path:
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    return file


#: The item file formats, by file extension.
EXPORT_FORMATS = (".json", ".jsonl", ".csv", ".xml")


def check_export_path(path: str | Path) -> Path:
    """``path`` as a Path if items can be exported to it (by its extension); ValueError naming it otherwise."""
    file = Path(path)
    if file.suffix.lower() not in EXPORT_FORMATS:
        raise ValueError(f"cannot export items to '{path}': use a .json, .jsonl, .csv or .xml file")
    return file


class ItemList(list):
    """A list of scraped items that can export itself to JSON, JSON Lines, CSV or XML."""

    def to_json(self, path: str | Path, *, indent: bool = False) -> None:
        """Write the items as one JSON array."""
        data = msgspec.json.encode(list(self))
        _target(path).write_bytes(msgspec.json.format(data, indent=2) if indent else data)

    def to_jsonl(self, path: str | Path) -> None:
        """Write one JSON object per line."""
        encoder = msgspec.json.Encoder()
        with _target(path).open("wb") as f:
            for item in self:
                f.write(encoder.encode(item) + b"\n")

    def to_csv(self, path: str | Path, *, fields: Iterable[str] | None = None, delimiter: str = ",") -> None:
        """Write a CSV with a column per key (every key seen, in order, unless ``fields``)."""
        columns = list(fields) if fields is not None else list({key: None for item in self for key in item})
        with _target(path).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, delimiter=delimiter, extrasaction="ignore")
            writer.writeheader()
            for item in self:
                writer.writerow({column: _cell(item.get(column)) for column in columns})

    def to_xml(self, path: str | Path, *, root_tag: str = "items", item_tag: str = "item", indent: bool = True) -> None:
        """Write an XML document with an element per item and a child per key."""
        root = Element(root_tag)
        for item in self:
            element = SubElement(root, item_tag)
            for key, value in item.items():
                child = SubElement(element, _xml_tag(key))
                if child.tag != str(key):
                    child.set("name", _XML_FORBIDDEN_CHARS.sub("", str(key)))
                child.text = _XML_FORBIDDEN_CHARS.sub("", _cell(value))
        tree = ElementTree(root)
        if indent:
            indent_tree(tree, space="  ")
        tree.write(_target(path), encoding="utf-8", xml_declaration=True)

    def export(self, path: str | Path) -> None:
        """Write the items in the format the file's suffix names (.json, .jsonl, .csv, .xml)."""
        writers = {".json": self.to_json, ".jsonl": self.to_jsonl, ".csv": self.to_csv, ".xml": self.to_xml}
        writers[check_export_path(path).suffix.lower()](path)


@dataclass
class CrawlStats:
    """Counters of a crawl, with the same fields as Scrapling's."""

    requests_count: int = 0
    requests_dispatched: int = 0  # shoal: jobs handed to workers (retries included)
    concurrent_requests: int = 0
    concurrent_requests_per_domain: int = 0
    failed_requests_count: int = 0
    failed_requests_by_kind: dict = field(default_factory=dict)  # shoal: timeout, connection, dns, rejected, ...
    offsite_requests_count: int = 0
    robots_disallowed_count: int = 0
    robots_txt_count: int = 0  # shoal: robots.txt files fetched (not in requests_count)
    cache_hits: int = 0
    cache_misses: int = 0
    response_bytes: int = 0
    items_scraped: int = 0
    items_dropped: int = 0
    start_time: float = 0.0
    end_time: float = 0.0
    download_delay: float = 0.0
    autothrottle_enabled: bool = False
    blocked_requests_count: int = 0
    escalations_count: int = 0  # shoal: blocked requests retried on a costlier sid
    escalation_routes: dict = field(default_factory=dict)  # shoal: domain -> sid learned by escalation
    autothrottle_delays: dict = field(default_factory=dict)
    custom_stats: dict = field(default_factory=dict)
    response_status_count: dict = field(default_factory=dict)
    domains_response_bytes: dict = field(default_factory=dict)
    sessions_requests_count: dict = field(default_factory=dict)
    workers_requests_count: dict = field(default_factory=dict)  # shoal: pages fetched per worker process
    proxies: list = field(default_factory=list)  # the proxies that fetched pages (without credentials)
    proxies_requests_count: dict = field(default_factory=dict)  # shoal: pages fetched through each proxy
    log_levels_counter: dict = field(default_factory=dict)
    dedup: str = "exact"  # shoal: how requests are deduplicated: "exact" (every fingerprint kept) or "bloom"
    bloom_capacity: int = 0  # shoal: the requests the Bloom filter was sized for
    bloom_error_rate: float = 0.0  # shoal: its false-positive rate once it holds bloom_capacity requests
    bloom_bits: int = 0  # shoal: its size
    bloom_hashes: int = 0  # shoal: the bits each request sets
    bloom_added: int = 0  # shoal: the distinct requests it holds (past bloom_capacity its error rate climbs)

    @property
    def elapsed_seconds(self) -> float:
        return self.end_time - self.start_time

    @property
    def requests_per_second(self) -> float:
        return self.requests_count / self.elapsed_seconds if self.elapsed_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The stats as Scrapling prints them at the end of a crawl."""
        return {
            "items_scraped": self.items_scraped,
            "items_dropped": self.items_dropped,
            "elapsed_seconds": round(self.elapsed_seconds, 2),
            "download_delay": round(self.download_delay, 2),
            "autothrottle_enabled": self.autothrottle_enabled,
            "autothrottle_delays": {domain: round(delay, 2) for domain, delay in self.autothrottle_delays.items()},
            "concurrent_requests": self.concurrent_requests,
            "concurrent_requests_per_domain": self.concurrent_requests_per_domain,
            "requests_count": self.requests_count,
            "requests_dispatched": self.requests_dispatched,
            "requests_per_second": round(self.requests_per_second, 2),
            "sessions_requests_count": self.sessions_requests_count,
            "workers_requests_count": self.workers_requests_count,
            "failed_requests_count": self.failed_requests_count,
            "failed_requests_by_kind": self.failed_requests_by_kind,
            "offsite_requests_count": self.offsite_requests_count,
            "robots_disallowed_count": self.robots_disallowed_count,
            "robots_txt_count": self.robots_txt_count,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "blocked_requests_count": self.blocked_requests_count,
            "escalations_count": self.escalations_count,
            "escalation_routes": self.escalation_routes,
            "response_status_count": self.response_status_count,
            "response_bytes": self.response_bytes,
            "domains_response_bytes": self.domains_response_bytes,
            "proxies": self.proxies,
            "proxies_requests_count": self.proxies_requests_count,
            "custom_stats": self.custom_stats,
            "log_count": self.log_levels_counter,
            "dedup": self.dedup,
            **(self._bloom() if self.dedup == "bloom" else {}),
        }

    def _bloom(self) -> dict[str, Any]:
        return {
            "bloom_capacity": self.bloom_capacity,
            "bloom_error_rate": self.bloom_error_rate,
            "bloom_bits": self.bloom_bits,
            "bloom_hashes": self.bloom_hashes,
            "bloom_added": self.bloom_added,
            "bloom_fill": round(self.bloom_added / self.bloom_capacity, 4) if self.bloom_capacity else 0.0,
        }


@dataclass
class CrawlResult:
    """The outcome of ``Spider.start()``: stats, items, whether the crawl was paused, and what failed."""

    stats: CrawlStats
    items: ItemList
    paused: bool = False
    stop_reason: str = ""  # shoal: the quota that stopped the crawl, if one did
    crawl_id: str = ""  # shoal: the crawl's id in Redis
    failed: list = field(default_factory=list)  # shoal: FailedRequest of each request whose fetch failed

    @property
    def completed(self) -> bool:
        """True when the crawl ran to its end (was not paused)."""
        return not self.paused

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)
