"""OGC API EDR over real HTTP: metadata, each query type, each output format, values
checked against the source files (numpy/netCDF4) and NCO, errors naming the parameter."""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import netCDF4
import numpy as np
import pytest
import xarray as xr

from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from pricing.entitlements import grant
from pricing.metering import AccessRecord
from tests.catalog.test_subset_reference import _as_ours, _assert_same
from tests.conftest import Server, get_while_key_locked, require_tool, running, unique

LEV = "levitus-climatology"
NAVY = "navy-winds-monthly"


@pytest.fixture(scope="module")
def client(server: Server, levitus: str, navy_winds: str) -> httpx.Client:
    name = unique("edr")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        for product in (LEV, NAVY):
            grant(s, name, product, granted_by="test")
        key = create_key(s, name, "catalog:read,data:read")[1]
    return server.client(key)


def _navy(corpus_dir: Path) -> netCDF4.Dataset:
    return netCDF4.Dataset(corpus_dir / "ferret-datasets" / "monthly_navy_winds.cdf")


def test_landing_conformance_and_collections(client: httpx.Client) -> None:
    landing = client.get("/edr").json()
    assert {"conformance", "data", "service-desc"} <= {link["rel"] for link in landing["links"]}
    conf = client.get("/edr/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/core" in conf
    cols = {c["id"]: c for c in client.get("/edr/collections").json()["collections"]}
    navy = cols[NAVY]
    assert set(navy["data_queries"]) == {"position", "area", "cube", "trajectory", "radius"}
    assert navy["data_queries"]["radius"]["link"]["variables"]["within_units"]
    assert set(navy["parameter_names"]) == {"UWND", "VWND"}
    assert navy["parameter_names"]["UWND"]["unit"]["symbol"] == "m s-1"
    assert navy["extent"]["temporal"]["interval"][0][0].startswith("1982-01")
    assert cols[LEV]["extent"]["vertical"]["interval"] == [["0.0", "5000.0"]]
    assert client.get(f"/edr/collections/{NAVY}").json()["id"] == NAVY


def test_position_time_series_equals_the_source_cell(
    client: httpx.Client, corpus_dir: Path
) -> None:
    r = client.get(
        f"/edr/collections/{NAVY}/position",
        params={"coords": "POINT(141.2 21.4)", "parameter-name": "UWND", "f": "CSV",
                "datetime": "1985-01-01/1985-12-31"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    header, units, body = rows[0], rows[1], rows[2:]
    assert "UWND" in header and units[header.index("UWND")] == "m s-1"
    with _navy(corpus_dir) as nc:
        x = int(np.argmin(np.abs(nc["FNOCX"][:] - 141.2)))  # the nearest cell: 140.0
        y = int(np.argmin(np.abs(nc["FNOCY"][:] - 21.4)))  # and 22.5
        assert (nc["FNOCX"][x], nc["FNOCY"][y]) == (140.0, 22.5)
        times = netCDF4.num2date(nc["TIME"][:], nc["TIME"].units, only_use_cftime_datetimes=False)
        months = [i for i, t in enumerate(times) if t.year == 1985]
        want = nc["UWND"][months, y, x]
    got = [float(row[header.index("UWND")]) for row in body]
    assert len(got) == 12
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert r.headers["oceanmart-access-id"].startswith("acc_")


def test_position_coveragejson_and_multipoint(client: httpx.Client) -> None:
    one = client.get(
        f"/edr/collections/{LEV}/position",
        params={"coords": "POINT(-30.2 10.1)", "parameter-name": "TEMP", "z": "0/500"},
    )
    assert one.status_code == 200, one.text
    assert one.headers["content-type"] == "application/prs.coverage+json"
    cov = one.json()
    assert cov["type"] == "Coverage" and cov["domain"]["domainType"] == "VerticalProfile"
    assert cov["domain"]["axes"]["z"]["values"][0] == 0
    assert len(cov["ranges"]["TEMP"]["values"]) == len(cov["domain"]["axes"]["z"]["values"])
    many = client.get(
        f"/edr/collections/{LEV}/position",
        params={"coords": "MULTIPOINT((-30 10),(150 -20))", "parameter-name": "TEMP", "z": "0"},
    ).json()
    assert many["type"] == "CoverageCollection" and len(many["coverages"]) == 2
    geo = client.get(
        f"/edr/collections/{LEV}/position",
        params={"coords": "MULTIPOINT((-30 10),(150 -20))", "parameter-name": "TEMP",
                "z": "0", "f": "GeoJSON"},
    )  # fmt: skip
    assert geo.headers["content-type"] == "application/geo+json"
    features = geo.json()["features"]
    assert [f["geometry"]["type"] for f in features] == ["Point", "Point"]


def test_cube_netcdf_equals_ncks(client: httpx.Client, levitus_file: Path, tmp_path: Path) -> None:
    ncks = require_tool("ncks")
    ref = tmp_path / "ref.nc"
    subprocess.run(
        [ncks, "-O", "-v", "SALT", "-d", "XAXLEVITR,330.,375.", "-d", "YAXLEVITR,-5.,35.",
         "-d", "ZAXLEVITR,150.,1200.", str(levitus_file), str(ref)],
        check=True,
    )  # fmt: skip
    r = client.get(
        f"/edr/collections/{LEV}/cube",
        params={"bbox": "-30,-5,15,35", "z": "150/1200", "parameter-name": "SALT", "f": "NetCDF"},
    )
    assert r.status_code == 200, r.text
    (tmp_path / "ours.nc").write_bytes(r.content)
    ours = xr.open_dataset(tmp_path / "ours.nc").load()
    _assert_same(ours, _as_ours(xr.open_dataset(ref).load()), "SALT")
    assert ours.attrs["oceanmart_access_id"] == r.headers["oceanmart-access-id"]


def test_area_masks_cells_outside_the_polygon(client: httpx.Client, levitus_file: Path) -> None:
    polygon = "POLYGON((120 20, 130 20, 120 30, 120 20))"  # a right triangle
    r = client.get(
        f"/edr/collections/{LEV}/area",
        params={"coords": polygon, "parameter-name": "TEMP", "z": "0", "f": "CoverageJSON"},
    )
    assert r.status_code == 200, r.text
    cov = r.json()
    xs = cov["domain"]["axes"]["x"]["values"]
    ys = cov["domain"]["axes"]["y"]["values"]
    values = np.array(cov["ranges"]["TEMP"]["values"], dtype=float).reshape(len(ys), len(xs))
    src = xr.open_dataset(levitus_file, decode_times=False)["TEMP"].sel(ZAXLEVITR=0.0)
    inside = outside = 0
    for j, y in enumerate(ys):
        for i, x in enumerate(xs):
            edge = (x - 120) + (y - 20)
            if edge < 10:  # centre inside the triangle
                want = float(src.sel(XAXLEVITR=x, YAXLEVITR=y))
                np.testing.assert_allclose(values[j, i], want, atol=1e-4)  # land: NaN both
                inside += 1
            elif edge > 10:
                assert np.isnan(values[j, i])
                outside += 1
    assert inside > 10 and outside > 10


def test_trajectory_samples_each_vertex_at_its_time(client: httpx.Client, corpus_dir: Path) -> None:
    track = [(140.0, 20.0, datetime(1984, 3, 15, tzinfo=UTC)),
             (150.0, 25.0, datetime(1984, 6, 15, tzinfo=UTC)),
             (160.0, 30.0, datetime(1984, 9, 15, tzinfo=UTC))]  # fmt: skip
    wkt = "LINESTRING M (" + ", ".join(f"{x} {y} {t.timestamp():.0f}" for x, y, t in track) + ")"
    r = client.get(
        f"/edr/collections/{NAVY}/trajectory",
        params={"coords": wkt, "parameter-name": "VWND", "f": "GeoJSON"},
    )
    assert r.status_code == 200, r.text
    features = r.json()["features"]
    assert len(features) == 3
    with _navy(corpus_dir) as nc:
        times = netCDF4.num2date(nc["TIME"][:], nc["TIME"].units, only_use_cftime_datetimes=False)
        stamps = np.array([t.replace(tzinfo=UTC).timestamp() for t in times])
        for feature, (x, y, t) in zip(features, track, strict=True):
            i = int(np.argmin(np.abs(stamps - t.timestamp())))
            j = int(np.argmin(np.abs(nc["FNOCY"][:] - y)))
            k = int(np.argmin(np.abs(nc["FNOCX"][:] - x)))
            assert feature["geometry"]["coordinates"][:2] == pytest.approx([x, y])
            assert feature["properties"]["VWND"] == pytest.approx(float(nc["VWND"][i, j, k]))
            assert feature["properties"]["cell"] == [float(nc["FNOCX"][k]), float(nc["FNOCY"][j])]


def test_radius_keeps_cells_within_the_distance(client: httpx.Client, levitus_file: Path) -> None:
    r = client.get(
        f"/edr/collections/{LEV}/radius",
        params={"coords": "POINT(150 -30)", "within": "500", "within-units": "km",
                "parameter-name": "TEMP", "z": "0"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    cov = r.json()
    xs, ys = cov["domain"]["axes"]["x"]["values"], cov["domain"]["axes"]["y"]["values"]
    values = np.array(cov["ranges"]["TEMP"]["values"], dtype=float).reshape(len(ys), len(xs))
    src = xr.open_dataset(levitus_file, decode_times=False)["TEMP"].sel(ZAXLEVITR=0.0)
    near = 0
    for j, y in enumerate(ys):
        for i, x in enumerate(xs):
            d = 6371.0 * np.hypot(np.radians(x - 150) * np.cos(np.radians(-30)), np.radians(y + 30))
            if d < 480:
                want = float(src.sel(XAXLEVITR=x, YAXLEVITR=y))
                np.testing.assert_allclose(values[j, i], want, atol=1e-4)
                near += 1
            elif d > 520:
                assert np.isnan(values[j, i]), (x, y, d)
    assert near > 20


@pytest.mark.parametrize(
    ("query", "params", "parameter"),
    [
        ("position", {"coords": "POINT(1)"}, "coords"),
        ("position", {"coords": "POLYGON((0 0,1 0,1 1,0 0))"}, "coords"),
        ("position", {"coords": "POINT(1 2)", "z": "0,10"}, "z"),
        ("position", {"coords": "POINT(1 2)", "f": "xlsx"}, "f"),
        ("position", {"coords": "POINT(1 2)", "parameter-name": "NOPE"}, "parameter-name"),
        ("cube", {}, "bbox"),
        ("cube", {"bbox": "10,20,0,95"}, "bbox"),
        ("area", {"coords": "POLYGON((0 0,1 1,1 0,0 1,0 0))"}, "coords"),
        ("radius", {"coords": "POINT(1 2)", "within": "-3", "within-units": "km"}, "within"),
        (
            "radius",
            {"coords": "POINT(1 2)", "within": "3", "within-units": "parsec"},
            "within-units",
        ),
        ("trajectory", {"coords": "POINT(1 2)"}, "coords"),
        ("cube", {"bbox": "0,0,10,10", "datetime": "2000-01-01/1999-01-01"}, "datetime"),
    ],
)
def test_bad_queries_are_400_naming_the_parameter(
    client: httpx.Client, query: str, params: dict[str, str], parameter: str
) -> None:
    r = client.get(f"/edr/collections/{LEV}/{query}", params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["parameter"] == parameter, r.json()


def test_every_query_is_metered(client: httpx.Client, server: Server) -> None:
    r = client.get(
        f"/edr/collections/{LEV}/cube",
        params={"bbox": "0,0,10,10", "z": "0", "parameter-name": "TEMP", "f": "CSV"},
    )
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.text)))[2:]
    with server.env.sessions() as s:
        row = s.get(AccessRecord, r.headers["oceanmart-access-id"])
        assert row is not None and row.channel == "edr" and row.cells == len(rows) == 100


def test_a_metered_subscription_pays_each_series_from_its_quota(
    server: Server, navy_winds: str
) -> None:
    """The point reader's answers are metered like any other: a subscription's quota
    (read by the gate) pays each series' cells, and an exhausted one gets 402."""
    from datetime import timedelta

    from pricing.entitlements import Entitlement, create_for_order
    from pricing.metering import AccessRecord as Access

    name = unique("quota")
    now = datetime.now(UTC)
    with transaction(server.env.sessions) as s:
        account = create_account(s, name, "enterprise")
        ent = create_for_order(
            s, account_id=account.id, product_id=NAVY, kind="subscription", order_id=name,
            now=now, expires_at=now + timedelta(days=30), quota_cells=200,
        )  # fmt: skip
        key = create_key(s, name, "data:read")[1]
    client = server.client(key)
    query = {"coords": "POINT(141.2 21.4)", "parameter-name": "UWND", "f": "CSV"}
    r = client.get(f"/edr/collections/{NAVY}/position", params=query)
    assert r.status_code == 200, r.text
    with server.env.sessions() as s:
        row = s.get(Entitlement, ent)
        assert row is not None and row.quota_used == 132  # one 132-month series
        access = s.get(Access, r.headers["oceanmart-access-id"])
        assert access is not None and access.entitlement_id == ent and access.cells == 132
    r = client.get(f"/edr/collections/{NAVY}/position", params=query)
    assert r.status_code == 402, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    with server.env.sessions() as s:
        row = s.get(Entitlement, ent)
        assert row is not None and row.quota_used == 132


def test_a_query_decides_its_gate_in_its_own_worker_thread(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EDR queries take the gate undecided (``GateDep``) and decide it in the thread that
    cuts the data: no second hand-over to a thread for the gate alone."""
    import api.deps

    def no_hop(*_: object, **__: object) -> None:
        raise AssertionError("the gate took a thread of its own")

    monkeypatch.setattr(api.deps, "run_in_threadpool", no_hop)
    r = client.get(
        f"/edr/collections/{NAVY}/position",
        params={"coords": "POINT(141.2 21.4)", "parameter-name": "UWND", "f": "CSV"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["oceanmart-access-id"].startswith("acc_")


def _navy_key(server: Server, prefix: str) -> tuple[str, str]:
    name = unique(prefix)
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        grant(s, name, NAVY, granted_by="test")
        info, key = create_key(s, name, "data:read")
    return info.id, key


SERIES = {"coords": "POINT(141.2 21.4)", "parameter-name": "UWND", "f": "CSV"}


def test_a_point_on_the_event_loop_waits_for_a_lock_in_a_worker_thread(
    server: Server, navy_winds: str
) -> None:
    """One point is answered on the event loop through connections that give up on a
    lock at once (``api.routers.edr``). When another transaction holds one (here the
    key's row, which the key's first use writes), the request runs again in a worker
    thread and waits there: answered once the lock is released, metered once, counted
    once against its key's rate (a burst of one: a second count would be a 429)."""
    from sqlalchemy import func, select

    key_id, key = _navy_key(server, "locked")
    r = get_while_key_locked(server, key_id, key, f"/edr/collections/{NAVY}/position", SERIES)
    assert r.status_code == 200, r.text
    with server.env.sessions() as s:
        records = s.scalar(
            select(func.count()).select_from(AccessRecord).where(AccessRecord.key_id == key_id)
        )
        assert records == 1
        assert s.get(AccessRecord, r.headers["oceanmart-access-id"]) is not None


def test_a_point_reading_more_than_the_loop_takes_goes_to_a_worker_thread(
    server: Server, navy_winds: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A point whose plan reads more than ``LOOP_BYTES`` is cut in a worker thread (the
    gate's answer handed over), with the same answer and one access record."""
    import api.routers.edr as router
    from api.work import run_cancellable

    key_id, key = _navy_key(server, "bigpoint")
    client = server.client(key)
    on_loop = client.get(f"/edr/collections/{NAVY}/position", params=SERIES)
    assert on_loop.status_code == 200, on_loop.text
    monkeypatch.setattr(router, "LOOP_BYTES", 0)
    threads: list[str] = []

    async def counted(request: Any, work: Any) -> Any:
        threads.append("worker")
        return await run_cancellable(request, work)

    monkeypatch.setattr(router, "run_cancellable", counted)
    in_thread = client.get(f"/edr/collections/{NAVY}/position", params=SERIES)
    assert in_thread.status_code == 200, in_thread.text
    assert threads == ["worker"]
    assert in_thread.content == on_loop.content
    assert in_thread.headers["oceanmart-access-id"] != on_loop.headers["oceanmart-access-id"]
    with server.env.sessions() as s:
        for r in (on_loop, in_thread):
            row = s.get(AccessRecord, r.headers["oceanmart-access-id"])
            assert row is not None and row.key_id == key_id and row.cells == 132


@pytest.mark.parametrize("durable", [False, True])
def test_access_records_commit_as_metering_durable_says(
    server: Server, navy_winds: str, durable: bool
) -> None:
    """The gate and the access record of a delivery commit through connections whose
    durability ``metering_durable`` sets (default: not waiting for the disk), on the
    event loop and in worker threads alike; every other write waits for the disk."""
    from api import create_app

    want = {"sqlite": ("2", "1"), "postgresql": ("on", "off")}[server.env.backend]
    query = "PRAGMA synchronous" if server.env.backend == "sqlite" else "SHOW synchronous_commit"
    settings = server.env.settings.model_copy(update={"metering_durable": durable})
    app = create_app(settings)
    _, key = _navy_key(server, "durable")
    with running(settings, app) as url, httpx.Client(base_url=url) as c:
        r = c.get(
            f"/edr/collections/{NAVY}/position",
            params=SERIES,
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200, r.text
        for sessions, durable_here in (
            (app.state.metering_sessions, durable),
            (app.state.loop_sessions, durable),
            (app.state.sessions, True),
        ):
            with sessions() as s:
                setting = str(s.connection().exec_driver_sql(query).scalar())
            assert setting == want[0 if durable_here else 1]
