"""Items export to JSON, JSON Lines, CSV and XML as Scrapling's ItemList does."""

import csv
import json
import xml.etree.ElementTree as ET

import pytest

from shoal.spiders import ItemList

ITEMS = ItemList([{"name": "A", "price": 1.5, "tags": ["x", "y"]}, {"name": "B", "extra": {"k": "v"}}])


def test_json_and_jsonl_round_trip(tmp_path):
    ITEMS.to_json(tmp_path / "out" / "items.json", indent=True)
    ITEMS.to_jsonl(tmp_path / "items.jsonl")
    assert json.loads((tmp_path / "out" / "items.json").read_text()) == list(ITEMS)
    assert [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()] == list(ITEMS)


def test_csv_has_every_key_as_a_column_and_containers_as_json(tmp_path):
    ITEMS.to_csv(tmp_path / "items.csv")
    rows = list(csv.DictReader((tmp_path / "items.csv").open()))
    assert list(rows[0]) == ["name", "price", "tags", "extra"]
    assert rows[0]["tags"] == '["x","y"]' and rows[1]["price"] == "" and rows[1]["extra"] == '{"k":"v"}'


def test_xml_has_an_element_per_item_and_key(tmp_path):
    ItemList([{"name": "A", "1st": "x"}]).to_xml(tmp_path / "items.xml")
    item = ET.parse(tmp_path / "items.xml").getroot().find("item")
    assert item.find("name").text == "A"
    assert item.find("_1st").get("name") == "1st"


def test_export_picks_the_format_by_suffix_and_names_a_bad_one(tmp_path):
    ITEMS.export(tmp_path / "items.csv")
    assert (tmp_path / "items.csv").read_text().startswith("name,price")
    with pytest.raises(ValueError, match=r"\.json, \.jsonl, \.csv or \.xml"):
        ITEMS.export(tmp_path / "items.txt")
