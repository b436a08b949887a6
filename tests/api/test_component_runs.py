"""Component runs over HTTP: planned, gated per product read, metered, streamed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import netCDF4
import numpy as np
import pytest
import xarray as xr

from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from pricing.entitlements import grant
from pricing.metering import AccessRecord
from tests.conftest import Server, running, unique

NAVY, COADS = "navy-winds-monthly", "coads-climatology"
SERIES = {"variables": ["UWND"], "point": [141.2, 21.4], "datetime": "1985-01-01/1985-12-31"}
ANOMALY = {"variables": ["UWND"], "area": {"bbox": [-40, -30, -10, 0]},
           "datetime": "1988-01-01/1988-12-31", "climatology": {"product": COADS}}  # fmt: skip


def _key(server: Server, *products: str) -> str:
    name = unique("runs")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        for product in products:
            grant(s, name, product, granted_by="test")
        return create_key(s, name, "catalog:read,data:read")[1]


@pytest.fixture(scope="module")
def both(server: Server, navy_winds: str, coads: str) -> httpx.Client:
    return server.client(_key(server, NAVY, COADS))


def test_point_series_csv_equals_the_source_cell(
    both: httpx.Client, server: Server, corpus_dir: Path
) -> None:
    r = both.post(
        "/v1/components/point-series/runs",
        json={"product": NAVY, "parameters": SERIES, "format": "csv"},
    )
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.text)))
    header, body = rows[0], rows[2:]
    with netCDF4.Dataset(corpus_dir / "ferret-datasets" / "monthly_navy_winds.cdf") as nc:
        x = int(np.argmin(np.abs(nc["FNOCX"][:] - 141.2)))
        y = int(np.argmin(np.abs(nc["FNOCY"][:] - 21.4)))
        want = nc["UWND"][36:48, y, x]  # 1985: the 37th to 48th months from 1982-01
    got = [float(row[header.index("UWND")]) for row in body]
    np.testing.assert_allclose(got, want, atol=1e-5)
    with server.env.sessions() as s:
        row = s.get(AccessRecord, r.headers["oceanmart-access-id"])
        assert row is not None and row.channel == "component" and row.cells == 12


def test_default_format_is_coveragejson_and_formats_are_checked(both: httpx.Client) -> None:
    r = both.post("/v1/components/point-series/runs", json={"product": NAVY, "parameters": SERIES})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/prs.coverage+json"
    assert r.json()["domain"]["domainType"] == "PointSeries"
    bad = both.post(
        "/v1/components/area-statistics/runs",
        json={"product": NAVY, "format": "geojson",
              "parameters": {"variables": ["UWND"], "area": {"bbox": [0, 0, 10, 10]}}},
    )  # fmt: skip
    assert bad.status_code == 400 and bad.json()["parameter"] == "format"


def test_anomaly_reads_and_charges_its_climatology_too(
    both: httpx.Client, server: Server, tmp_path: Path
) -> None:
    r = both.post(
        "/v1/components/climatology-anomaly/runs",
        json={"product": NAVY, "parameters": ANOMALY, "format": "netcdf"},
    )
    assert r.status_code == 200, r.text
    ids = r.headers["oceanmart-access-id"].split(", ")
    with server.env.sessions() as s:
        products = [s.get(AccessRecord, i).product_id for i in ids]  # type: ignore[union-attr]
    assert products == [NAVY, COADS]
    (tmp_path / "a.nc").write_bytes(r.content)
    ds = xr.open_dataset(tmp_path / "a.nc")
    assert ds.UWND.sizes["time"] == 12 and ds.attrs["oceanmart_component"] == "climatology-anomaly"


def test_a_run_needs_an_entitlement_to_every_product_it_reads(
    server: Server, navy_winds: str, coads: str
) -> None:
    key = _key(server, NAVY)
    with server.client(key) as c:
        r = c.post(
            "/v1/components/climatology-anomaly/runs",
            json={"product": NAVY, "parameters": ANOMALY},
        )
        assert r.status_code == 403 and r.json()["product"] == COADS
    key_id = key.split("_")[1]
    with server.env.sessions() as s:
        assert s.query(AccessRecord).filter_by(key_id=key_id).count() == 0  # nothing metered
    with server.client(_key(server, COADS)) as c:
        r = c.post("/v1/components/point-series/runs", json={"product": NAVY, "parameters": SERIES})
        assert r.status_code == 403 and r.json()["type"] == "/problems/not-entitled"


@pytest.mark.parametrize(
    ("component", "body", "status", "parameter"),
    [
        ("point-series", {"product": NAVY, "parameters": {**SERIES, "variables": ["NOPE"]}},
         400, "component.parameters.variables"),
        ("point-series", {"product": NAVY, "parameters": {"point": [1, 2]}},
         400, "component.parameters.variables"),
        ("vertical-profile", {"product": NAVY, "parameters": {"variables": ["UWND"],
                                                              "point": [1, 2]}},
         400, "component.parameters.variables"),
        ("point-series", {"parameters": SERIES}, 400, "product"),
        ("nope", {"product": NAVY, "parameters": SERIES}, 400, "component"),
    ],
)  # fmt: skip
def test_bad_runs_name_the_field(
    both: httpx.Client, component: str, body: dict[str, object], status: int, parameter: str
) -> None:
    r = both.post(f"/v1/components/{component}/runs", json=body)
    assert r.status_code == status, r.text
    assert r.json()["parameter"] == parameter


def test_a_run_too_big_for_a_request_is_413_pointing_at_jobs(
    server: Server, navy_winds: str
) -> None:
    settings = server.env.settings.model_copy(update={"max_request_bytes": 1000})
    key = _key(server, NAVY)
    with running(settings) as url, httpx.Client(base_url=url) as c:
        r = c.post(
            "/v1/components/temporal-aggregation/runs",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "product": NAVY,
                "parameters": {"variables": ["UWND"], "area": {"bbox": [0, 0, 60, 60]},
                               "period": "year"},
            },
        )  # fmt: skip
    assert r.status_code == 413, r.text
    assert {link["rel"] for link in r.json()["links"]} == {"quote", "job"}
