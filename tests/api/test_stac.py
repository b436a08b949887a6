"""The STAC API through pystac-client, on a catalog of its own (known products only).

Schemas: the STAC core JSON schemas bundled with pystac validate every landing page,
collection and item offline, and stac-pydantic's API models parse the API documents.
(stac-api-validator and the extension schemas are fetched from the internet, which this
machine cannot reach.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pystac.validation
import pytest
from pystac_client import Client
from stac_pydantic.api import Collections, ItemCollection, LandingPage

from ingest import ingest, load_spec
from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from pricing.entitlements import grant
from tests.conftest import LEVITUS_SPEC, ROOT, _drop_schema, _make_env, running

SPECS = ROOT / "ingest" / "specs"
PUBLIC = {"levitus-climatology", "navy-winds-monthly", "etopo60"}


@dataclass
class Catalog:
    url: str
    insider: str  # a key of an account entitled to the private product


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalog(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path
) -> Iterator[Catalog]:
    env, schema = _make_env(request.param, tmp_path_factory.mktemp("stac"), corpus_dir)
    specs = [load_spec(LEVITUS_SPEC), load_spec(SPECS / "navy-winds-monthly.yaml")]
    specs.append(load_spec(SPECS / "etopo60.yaml"))
    private = load_spec(SPECS / "coads-climatology.yaml")
    specs.append(private.model_copy(update={"visibility": type(private.visibility)("private")}))
    for spec in specs:
        ingest(spec, sessions=env.sessions, store=env.store, corpus_dir=corpus_dir)
    with transaction(env.sessions) as s:
        create_account(s, "navy-office", "government")
        grant(s, "navy-office", private.id, granted_by="test")
        key = create_key(s, "navy-office", "catalog:read")[1]
    with running(env.settings) as url:
        yield Catalog(f"{url}/stac", key)
    env.sessions.kw["bind"].dispose()
    _drop_schema(schema)


def _ids(items: object) -> set[str]:
    return {i.collection_id for i in items}  # type: ignore[attr-defined]


def test_collections_respect_visibility(catalog: Catalog) -> None:
    anonymous = Client.open(catalog.url)
    assert {c.id for c in anonymous.get_collections()} == PUBLIC
    insider = Client.open(catalog.url, headers={"Authorization": f"Bearer {catalog.insider}"})
    assert {c.id for c in insider.get_collections()} == PUBLIC | {"coads-climatology"}
    assert httpx.get(f"{catalog.url}/collections/coads-climatology").status_code == 404
    search = anonymous.search(collections=["coads-climatology"])
    assert list(search.items()) == []


def test_item_search_by_bbox_and_datetime(catalog: Catalog) -> None:
    client = Client.open(catalog.url)
    # The East China Sea in 1985: only the winds have data there and then.
    found = client.search(bbox=[120, 20, 130, 30], datetime="1985-01-01/1986-12-31")
    assert _ids(found.items()) == {"navy-winds-monthly"}
    # A box across the antimeridian, and a time before any product.
    found = client.search(bbox=[170, -10, -170, 10], datetime="1990-06-01T00:00:00Z")
    assert _ids(found.items()) == {"navy-winds-monthly"}
    assert _ids(client.search(datetime="1950-01-01/1960-01-01").items()) == set()
    # Space only: every product covers the globe.
    assert _ids(client.search(bbox=[-10, -10, 10, 10]).items()) == PUBLIC
    # Pages of one item each are followed to the end.
    assert len(list(client.search(limit=1, max_items=10).items())) == len(PUBLIC)
    poly = {"type": "Polygon", "coordinates": [[[121, 29], [124, 29], [124, 32], [121, 29]]]}
    found = client.search(intersects=poly, datetime="1991-01-01/1991-12-31", method="POST")
    assert _ids(found.items()) == {"navy-winds-monthly"}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("温度", {"levitus-climatology"}),
        ("temperature", {"levitus-climatology"}),
        ("风", {"navy-winds-monthly"}),
        ("wind,relief", {"navy-winds-monthly", "etopo60"}),
        ("sea_water_salinity", {"levitus-climatology"}),
        ("UWND", {"navy-winds-monthly"}),
        ("no such words", set()),
    ],
)
def test_free_text_in_chinese_and_english(catalog: Catalog, q: str, expected: set[str]) -> None:
    client = Client.open(catalog.url)
    assert {c.id for c in client.collection_search(q=q).collections()} == expected
    r = httpx.post(f"{catalog.url}/search", json={"q": q})
    assert {f["collection"] for f in r.json()["features"]} == expected


def test_theme_and_variable_filters(catalog: Catalog) -> None:
    r = httpx.get(f"{catalog.url}/search", params={"theme": "early-warning"})
    assert {f["collection"] for f in r.json()["features"]} == {"navy-winds-monthly"}
    r = httpx.get(f"{catalog.url}/search", params={"variable": "sea_water_temperature"})
    assert {f["collection"] for f in r.json()["features"]} == {"levitus-climatology"}
    r = httpx.get(f"{catalog.url}/collections", params={"theme": "water-environment"})
    assert {c["id"] for c in r.json()["collections"]} == {"levitus-climatology"}


def _core_valid(doc: dict[str, object]) -> None:
    # Offline: pystac bundles the STAC core schemas; extension schemas live online.
    pystac.validation.validate_dict({**doc, "stac_extensions": []})


def test_documents_validate_against_the_stac_schemas(catalog: Catalog) -> None:
    landing = httpx.get(catalog.url).json()
    LandingPage.model_validate(landing)
    _core_valid(landing)
    assert {"https://api.stacspec.org/v1.0.0/item-search"} <= set(landing["conformsTo"])
    assert {link["rel"] for link in landing["links"]} >= {
        "self",
        "root",
        "conformance",
        "data",
        "search",
    }
    collections = httpx.get(f"{catalog.url}/collections").json()
    Collections.model_validate(collections)
    for c in collections["collections"]:
        _core_valid(c)
        dims = c["cube:dimensions"]
        assert dims["longitude"]["axis"] == "x" and dims["latitude"]["axis"] == "y"
        assert set(c["cube:variables"]) and c["assets"]["zarr"]["href"].endswith(
            f"/zarr/products/{c['id']}"
        )
    navy = httpx.get(f"{catalog.url}/collections/navy-winds-monthly").json()
    assert navy["cube:dimensions"]["time"]["extent"] == [
        "1982-01-16T20:00:00Z",
        "1992-12-17T03:30:00Z",
    ]
    assert navy["cube:variables"]["UWND"]["dimensions"] == ["time", "latitude", "longitude"]
    search = httpx.get(f"{catalog.url}/search", params={"limit": 2}).json()
    ItemCollection.model_validate(search)
    assert search["numberMatched"] == len(PUBLIC) and search["numberReturned"] == 2
    for feature in search["features"]:
        _core_valid(feature)
        one = httpx.get(f"{catalog.url}/collections/{feature['collection']}/items/{feature['id']}")
        assert one.status_code == 200 and one.json()["id"] == feature["id"]
    items = httpx.get(f"{catalog.url}/collections/etopo60/items")
    assert items.headers["content-type"] == "application/geo+json"
    assert [f["properties"]["oceanmart:current"] for f in items.json()["features"]] == [True]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "0,10,5,0"}, "bbox"),
        ({"datetime": "1990-01-01/1980-01-01"}, "datetime"),
        ({"intersects": "{not json"}, "intersects"),
        (
            {
                "intersects": '{"type": "Polygon", "coordinates": '
                "[[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}"
            },
            "intersects",
        ),
        ({"token": "page-2"}, "token"),
    ],
)
def test_bad_search_parameters_are_400(
    catalog: Catalog, params: dict[str, str], field: str
) -> None:
    r = httpx.get(f"{catalog.url}/search", params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["parameter"] == field
