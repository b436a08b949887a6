"""POST /v1/plans over HTTP, bad selections as problem+json, and catalog visibility."""

from __future__ import annotations

import pytest

from ingest import ingest, load_spec
from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from pricing.entitlements import grant
from tests.conftest import LEVITUS_SPEC, ROOT, Server, unique

NAVY = ROOT / "ingest" / "specs" / "navy-winds-monthly.yaml"


@pytest.fixture(scope="module")
def reader(server: Server, levitus: str) -> str:
    ingest(
        load_spec(NAVY),
        sessions=server.env.sessions,
        store=server.env.store,
        corpus_dir=server.env.settings.corpus_dir,
    )
    name = unique("planner")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "research")
        return create_key(s, name, "catalog:read")[1]


def test_a_plan_names_copy_chunks_cells_and_bytes(server: Server, reader: str) -> None:
    body = {
        "product": "levitus-climatology",
        "selection": {"bbox": [-10, -20, 10, 20], "depth": [0, 100], "variables": ["TEMP"]},
    }
    with server.client(reader) as c:
        r = c.post("/v1/plans", json=body)
        assert r.status_code == 200, r.text
        p = r.json()
        # centres -9.5..9.5 by -19.5..19.5, depths 0, 10, 20, 30, 50, 75, 100
        assert p["cells"] == 20 * 40 * 7 and p["bytes"] == p["cells"] * 4
        assert p["shape"] == {"depth": 7, "latitude": 40, "longitude": 20}
        assert p["copy"] in ("map", "series") and p["chunks"] > 0
        assert p["bytes_to_read"] == p["copies"][p["copy"]]["bytes"]
        assert p["subset_id"].startswith("sub_") and p["version"]
        # the same selection written differently: same subset id
        same = {
            "product": "levitus-climatology",
            "selection": {"bbox": "350,-20,10.0,20", "depth": "0,100", "variables": "TEMP"},
        }
        assert c.post("/v1/plans", json=same).json()["subset_id"] == p["subset_id"]
        saved = c.get(f"/v1/plans/{p['subset_id']}").json()
        assert saved["selection"] == p["selection"] and saved["version_id"] == p["version"]
        assert saved["cells"] == p["cells"] and saved["copy"] == p["copy"]
        assert c.get("/v1/plans/sub_000000000000000000000000").status_code == 404
        series = c.post(
            "/v1/plans", json={"product": "navy-winds-monthly", "selection": {"point": [140, 20]}}
        ).json()
        assert series["copy"] == "series" and series["shape"] == {"time": 132, "points": 1}


@pytest.mark.parametrize(
    ("product", "selection", "field"),
    [
        (
            "levitus-climatology",
            {"polygon": {"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [5, 5]]]}},
            "polygon",
        ),
        ("levitus-climatology", {"polygon": "POLYGON((0 0, 5 5, 5 0, 0 5, 0 0))"}, "polygon"),
        ("levitus-climatology", {"variables": ["TEMP", "NOPE"]}, "variables"),
        ("levitus-climatology", {"sea_area": "atlantis"}, "sea_area"),
        ("navy-winds-monthly", {"depth": [0, 10]}, "depth"),
        ("navy-winds-monthly", {"datetime": "1990-01-01/1985-01-01"}, "datetime"),
        ("navy-winds-monthly", {"stride": 0}, "stride"),
        ("levitus-climatology", {"route": "north"}, "route"),
    ],
)
def test_bad_selections_are_400_naming_the_field(
    server: Server, reader: str, product: str, selection: dict[str, object], field: str
) -> None:
    with server.client(reader) as c:
        r = c.post("/v1/plans", json={"product": product, "selection": selection})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["parameter"] == field


def test_empty_selections_say_why(server: Server, reader: str) -> None:
    with server.client(reader) as c:
        r = c.post(
            "/v1/plans",
            json={"product": "navy-winds-monthly", "selection": {"datetime": "2001-01-01/.."}},
        )
    assert r.status_code == 400 and r.json()["type"] == "/problems/empty-selection"
    assert r.json()["empty_dimensions"] == ["time"]


def test_a_private_product_is_seen_only_by_entitled_accounts(server: Server, reader: str) -> None:
    env = server.env
    spec = load_spec(LEVITUS_SPEC).model_copy(update={"id": "private-levitus"})
    spec = spec.model_copy(update={"visibility": type(spec.visibility)("private")})
    ingest(spec, sessions=env.sessions, store=env.store, corpus_dir=env.settings.corpus_dir)
    insider = unique("insider")
    with transaction(env.sessions) as s:
        create_account(s, insider, "government")
        grant(s, insider, "private-levitus", granted_by="test")
        insider_key = create_key(s, insider, "catalog:read,data:read")[1]
    admin = env.admin_key()
    plan = {"product": "private-levitus", "selection": {"variables": ["TEMP"]}}
    for key, sees in ((reader, False), (insider_key, True), (admin, True)):
        with server.client(key) as c:
            listed = [p["id"] for p in c.get("/v1/products").json()["products"]]
            assert ("private-levitus" in listed) is sees
            assert c.get("/v1/products/private-levitus").status_code == (200 if sees else 404)
            assert c.post("/v1/plans", json=plan).status_code == (200 if sees else 404)
            assert "levitus-climatology" in listed


def test_components_are_listed_with_typed_parameters(server: Server, reader: str) -> None:
    with server.client() as c:
        listed = c.get("/v1/components").json()["components"]
        ids = {x["id"] for x in listed}
        assert ids >= {"point-series", "area-statistics", "route-sampling", "regrid"}
        for x in listed:
            assert x["title_zh"] and x["outputs"] and x["price"]["basis"] in ("cells", "points")
            assert x["parameters"]["type"] == "object" and x["parameters"]["properties"]
        assert c.get("/v1/components/regrid").json()["parameters"]["properties"]["resolution"]
        assert c.get("/v1/components/nope").status_code == 404
        links = c.get("/stac").json()["links"]
        assert any(link["href"].endswith("/v1/components") for link in links)
    call = {
        "id": "area-statistics",
        "parameters": {"variables": ["TEMP"], "area": {"sea_area": "x"}},
    }
    body = {
        "product": "levitus-climatology",
        "selection": {"variables": ["TEMP"]},
        "component": call,
    }
    with server.client(reader) as c:
        r = c.post("/v1/plans", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["component"]["price"] == {"basis": "cells", "factor": 1.5}
        bad = dict(
            body,
            component={
                "id": "regrid",
                "parameters": {"variables": ["TEMP"], "area": {}, "resolution": 0},
            },
        )
        r = c.post("/v1/plans", json=bad)
        assert r.status_code == 400 and r.json()["parameter"] == "component.parameters.resolution"
        r = c.post("/v1/plans", json=dict(body, component={"id": "teleport"}))
        assert r.status_code == 400 and r.json()["parameter"] == "component"
