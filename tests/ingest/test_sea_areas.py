"""Sea areas: GSHHS shorelines to a land/sea mask and islands, operator GeoJSON areas,
Natural Earth shapefile polygons, and on-demand, cached rasterisation onto product grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from catalog import sea_areas
from catalog.selection import parse_selection
from catalog.subset import apply
from ingest import ingest, load_spec
from ingest.corpus import corpus_path
from ingest.vector import islands, read_geojson, read_gshhs, read_shapefile
from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from oceanmart.errors import InvalidInput, SourceError
from pricing.entitlements import grant
from tests.conftest import ROOT, Env, Server, unique

AREAS = ROOT / "ingest" / "specs" / "sea-areas.geojson"


@pytest.fixture(scope="module")
def gshhs(corpus_dir: Path) -> Path:
    corpus_path("gshhsmeta_l.dat", corpus_dir)
    return corpus_path("gshhs_l.dat", corpus_dir)


def test_gshhs_levels_and_antimeridian_halves(gshhs: Path) -> None:
    polygons = read_gshhs(gshhs)
    levels = {level for level, *_ in polygons}
    assert levels == {1, 2, 3, 4, 5} or levels >= {1, 2, 3, 5}
    ids = {ident for _, _, ident, _ in polygons}
    assert {"0-E", "0-W"} <= ids  # Eurasia is split at the antimeridian
    for _, _, _, poly in polygons:
        w, s, e, n = poly.bounds
        assert w >= -180 and e <= 180 and s >= -90 and n <= 90


def test_land_sea_mask_product_agrees_with_etopo(fresh_env: Env, gshhs: Path) -> None:
    """Independent check: where ETOPO20 relief is clearly above or below sea level, the
    GSHHS mask says land or sea."""
    result = ingest(
        load_spec(ROOT / "ingest" / "specs" / "land-sea-mask.yaml"),
        sessions=fresh_env.sessions,
        store=fresh_env.store,
        corpus_dir=fresh_env.settings.corpus_dir,
    )
    mask = fresh_env.store.open_version(result.store_path).sea.load()
    assert mask.shape == (720, 1440) and set(np.unique(mask.values)) == {0, 1}
    etopo = xr.open_dataset(corpus_path("etopo20.cdf", fresh_env.settings.corpus_dir))
    rose = etopo.ROSE.rename({"ETOPO20Y": "latitude", "ETOPO20X1_1081": "longitude"})
    rose = rose.assign_coords(longitude=((rose.longitude + 180) % 360) - 180).sortby("longitude")
    at = mask.sel(latitude=rose.latitude, longitude=rose.longitude, method="nearest")
    clear = np.abs(rose.values) > 200  # away from the shoreline and its resolution
    agree = (at.values == 1) == (rose.values < 0)
    assert agree[clear].mean() > 0.97
    for lon, lat, sea in ((0, 0, 1), (20, 0, 0), (116.4, 39.9, 0), (-87.5, 47.6, 1)):
        assert int(mask.sel(longitude=lon, latitude=lat, method="nearest")) == sea


def test_islands_and_countries(gshhs: Path, corpus_dir: Path) -> None:
    found = islands(gshhs, min_area_km2=1000)
    biggest = max(found, key=lambda f: f.area_km2)
    assert 2.0e6 < biggest.area_km2 < 2.3e6  # Greenland, the largest island
    assert biggest.geometry.contains(__import__("shapely").Point(-40, 72))
    countries = read_shapefile(
        corpus_path("ne_10m_admin_0_countries_deu.shp", corpus_dir), "ISO_A3", "country"
    )
    by_id = {c.id: c for c in countries}
    assert len(countries) > 230 and by_id["country-chn"].name_zh == "中华人民共和国"
    assert by_id["country-chn"].geometry.contains(__import__("shapely").Point(116.4, 39.9))


def test_operator_areas_rasterise_on_any_grid_and_are_cached(env: Env, levitus: str) -> None:
    with transaction(env.sessions) as s:
        sea_areas.save_areas(s, read_geojson(AREAS))
    with env.sessions() as s:
        zhoushan = sea_areas.get_area(s, "zhoushan-fishing-ground")
        bering = sea_areas.get_area(s, "bering-sea-south")
    assert zhoushan.name_zh == "舟山渔场"
    from catalog.products import get_product

    with env.sessions() as s:
        version = get_product(s, levitus).version
    assert version is not None
    ds = env.store.open_version(version.store_path)
    m1 = sea_areas.rasterise(zhoushan, ds.longitude.values, ds.latitude.values)
    hits = sea_areas._rasterise.cache_info().hits
    m2 = sea_areas.rasterise(zhoushan, ds.longitude.values, ds.latitude.values)
    assert m1 is m2 and sea_areas._rasterise.cache_info().hits == hits + 1
    # 1-degree centres 121.5..124.5 E, 28.5..30.5 N inside the outline
    assert 6 <= int(m1.sum()) <= 12
    cut = apply(
        ds,
        parse_selection(variables="TEMP", depth="0,0", sea_area="zhoushan-fishing-ground"),
        zhoushan,
    ).load()
    inside = cut.TEMP.notnull().sum().item()
    assert 0 < inside <= int(m1.sum())
    # an area drawn across the antimeridian (170E..165W) works on a -180..180 grid
    across = apply(ds, parse_selection(variables="TEMP", depth="0,0"), bering).load()
    assert across.longitude.values[0] == 170.5 and across.longitude.values[-1] == 194.5
    assert across.TEMP.notnull().sum().item() > 50


def test_bad_areas_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", '
        '"properties": {"name_en": "x"}, "geometry": {"type": "Point", '
        '"coordinates": [0, 0]}}]}'
    )
    with pytest.raises(SourceError, match="needs an id"):
        read_geojson(bad)
    (feature,) = read_geojson(AREAS)[:1]
    point = sea_areas.AreaFeature("p", "p", "", "sea-area", __import__("shapely").Point(0, 0), "t")
    with pytest.raises(InvalidInput, match="Polygon"):
        sea_areas.validate_feature(point)
    with pytest.raises(InvalidInput, match="id"):
        sea_areas.validate_feature(
            sea_areas.AreaFeature("Bad Id", "x", "", "sea-area", feature.geometry, "t")
        )


def test_subset_by_named_sea_area_over_http(server: Server, levitus: str) -> None:
    admin = server.env.admin_key()
    feature = read_geojson(AREAS)[0]
    body = {
        "type": "Feature",
        "properties": {"id": "ecs-http", "name_en": "East China Sea", "name_zh": "东海"},
        "geometry": __import__("shapely").geometry.mapping(feature.geometry),
    }
    name = unique("area-buyer")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        grant(s, name, levitus, granted_by="test")
        key = create_key(s, name, "catalog:read,data:read")[1]
    with server.client(admin) as a:
        r = a.post("/v1/sea-areas", json=body)
        assert r.status_code == 201, r.text
        bad = a.post("/v1/sea-areas", json={**body, "geometry": {"type": "Nope"}})
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    with server.client(key) as c:
        listed = c.get("/v1/sea-areas").json()
        assert "ecs-http" in [x["id"] for x in listed]
        assert c.get("/v1/sea-areas/ecs-http").json()["properties"]["name_zh"] == "东海"
        assert c.get("/v1/sea-areas/nowhere").status_code == 404
        r = c.get(
            "/v1/products/levitus-climatology/subset",
            params={"sea_area": "ecs-http", "variables": "TEMP", "depth": "0,0"},
        )
        assert r.status_code == 200, r.text
        r = c.get("/v1/products/levitus-climatology/subset", params={"sea_area": "nowhere"})
        # an unknown area is a bad selection, named like any other bad parameter
        assert r.status_code == 400 and r.json()["parameter"] == "sea_area"
        assert "nowhere" in r.json()["detail"]
