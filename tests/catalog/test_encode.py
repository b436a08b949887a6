"""Encoders: what they write parses back to the same values, validates against the
CoverageJSON and GeoJSON models (covjson-pydantic, geojson-pydantic), streams in pieces,
and NetCDF reopens equal with its provenance."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import dask.array
import numpy as np
import orjson
import pytest
import xarray as xr
from covjson_pydantic.coverage import Coverage, CoverageCollection
from geojson_pydantic import FeatureCollection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from catalog.compute import ComponentResult, Source, run_component
from catalog.encode import (
    MEDIA_TYPES,
    _float_strings,
    _one_text,
    coveragejson_chunks,
    csv_chunks,
    encode,
    formats,
    geojson_points,
)
from catalog.selection import selection_from_json
from catalog.subset import apply
from oceanmart.errors import InvalidParameter
from tests.conftest import require_tool

pytestmark = pytest.mark.xdist_group("compute")

NAVY, COADS, LEVITUS, ATLAS = (
    "navy-winds-monthly", "coads-climatology", "levitus-climatology", "ocean-atlas-monthly",
)  # fmt: skip
ORDER = ("time", "depth", "latitude", "longitude")
AXIS = {"time": "t", "depth": "z", "latitude": "y", "longitude": "x"}


# --- parsing back -------------------------------------------------------------------------


def parse_csv(data: bytes) -> tuple[list[str], list[str], dict[str, list[str]]]:
    rows = list(csv.reader(io.StringIO(data.decode())))
    header, units, body = rows[0], rows[1], rows[2:]
    assert all(len(r) == len(header) for r in body)
    return header, units, {name: [r[i] for r in body] for i, name in enumerate(header)}


def csv_floats(column: list[str], dtype: Any) -> np.ndarray:
    return np.array([float(v) if v else np.nan for v in column]).astype(dtype)


def covjson_values(rng: dict[str, Any], dtype: Any) -> np.ndarray:
    values = np.array([np.nan if v is None else v for v in rng["values"]], dtype="f8")
    return values.astype(dtype).reshape(rng["shape"])


def validated(data: bytes) -> dict[str, Any]:
    """The document, after checking it against the CoverageJSON models."""
    doc: dict[str, Any] = json.loads(data)
    model = CoverageCollection if doc["type"] == "CoverageCollection" else Coverage
    model.model_validate_json(data)
    return doc


def joined(pieces: Any) -> bytes:
    return b"".join(pieces)


# --- generated datasets -------------------------------------------------------------------


def _axis(draw: st.DrawFn, lo: float, hi: float, n: int) -> np.ndarray:
    values = draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n, unique=True))
    return np.sort(np.asarray(values, dtype="f8"))


@st.composite
def datasets(draw: st.DrawFn) -> xr.Dataset:
    """A grid (latitude x longitude, maybe depth and time) or one position over time
    and/or depth; a float32 variable with gaps (stored in any axis order) and an int16."""
    gridded = draw(st.booleans())
    extra = draw(st.sampled_from([(), ("time",), ("depth",), ("time", "depth")]))
    dims = tuple(d for d in ORDER if d in extra or (gridded and d in ("latitude", "longitude")))
    sizes = {d: draw(st.integers(1, 4)) for d in dims}
    coords: dict[str, Any] = {}
    for d, n in sizes.items():
        if d == "time":
            steps = draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n, unique=True))
            coords[d] = np.datetime64("1990-01-01T00:00:00", "ns") + np.sort(steps) * 10**9
        else:
            lo, hi = {"depth": (0, 6000), "latitude": (-90, 90), "longitude": (-180, 180)}[d]
            coords[d] = _axis(draw, lo, hi, n)
    if not gridded:
        coords["latitude"] = draw(st.floats(-90, 90))
        coords["longitude"] = draw(st.floats(-180, 180))
    shape = tuple(sizes.values())
    floats = st.floats(width=32, allow_nan=True, allow_infinity=False)
    temp = xr.DataArray(draw(arrays(np.float32, shape, elements=floats)), dims=dims)
    order = draw(st.permutations(dims))
    count = draw(arrays(np.int16, shape))
    return xr.Dataset(
        {
            "temp": temp.transpose(*order).assign_attrs(units="degC", long_name="temperature"),
            "count": (dims, count, {"units": "1"}),
        },
        coords=coords,
    )


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(ds=datasets(), rows=st.integers(1, 9))
def test_csv_reads_back_the_same_values(ds: xr.Dataset, rows: int) -> None:
    pieces = list(csv_chunks(ds, rows=rows))
    header, units, columns = parse_csv(joined(pieces))
    dims = [d for d in ORDER if d in ds.temp.dims]
    n = math.prod(ds.sizes[d] for d in dims)
    lines = [piece.decode().count("\n") for piece in pieces[1:]]
    assert sum(lines) == n and max(lines, default=0) <= rows
    assert header[: len(dims)] == dims and header[-2:] == ["temp", "count"]
    assert units[header.index("temp")] == "degC"
    temp = ds.temp.transpose(*dims).values.ravel()
    np.testing.assert_array_equal(csv_floats(columns["temp"], np.float32), temp)
    assert [int(v) for v in columns["count"]] == ds["count"].values.ravel().tolist()
    grids = np.meshgrid(*(ds[d].values for d in dims), indexing="ij")
    for d, grid in zip(dims, grids, strict=True):
        if d == "time":
            got = np.array([np.datetime64(v.removesuffix("Z"), "ns") for v in columns[d]])
            np.testing.assert_array_equal(got, grid.ravel())
            assert units[header.index(d)] == "UTC"
        else:
            np.testing.assert_array_equal(csv_floats(columns[d], "f8"), grid.ravel())
    if "latitude" not in dims:  # a position: constant columns, one text of the same value
        (text,) = set(columns["latitude"])
        assert float(text) == float(ds.latitude)


DAY = np.timedelta64(1, "D")


def test_csv_of_a_series_writes_each_time_axis_as_its_own() -> None:
    """Time axes' texts are kept by their values (one series after another at the same
    times): the same axis gives the same text, another axis of the same length its own,
    a missing instant an empty field; constant columns repeat on every row."""

    def series(start: str, value: float) -> xr.Dataset:
        times = np.arange(np.datetime64(start, "ns"), np.datetime64(start, "ns") + 3 * DAY, DAY)
        if start == "2001-01-01":
            times[1] = np.datetime64("NaT", "ns")
        return xr.Dataset(
            {"sst": ("time", np.full(3, value, np.float32), {"units": "degC"})},
            coords={"time": times, "latitude": 10.5, "longitude": -30.25},
        )

    def rows(ds: xr.Dataset) -> list[str]:
        return joined(csv_chunks(ds)).decode().splitlines()[2:]

    first = rows(series("2000-01-01", 1.5))
    assert first == [f"2000-01-0{d}T00:00:00Z,10.5,-30.25,1.5" for d in (1, 2, 3)]
    assert rows(series("2000-01-01", 2.5)) == [r.replace(",1.5", ",2.5") for r in first]
    assert rows(series("2001-01-01", 1.5)) == [
        "2001-01-01T00:00:00Z,10.5,-30.25,1.5",
        ",10.5,-30.25,1.5",
        "2001-01-03T00:00:00Z,10.5,-30.25,1.5",
    ]
    assert rows(series("2000-01-01", 1.5)) == first


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(ds=datasets(), limit=st.integers(1, 9))
def test_coveragejson_reads_back_the_same_values(ds: xr.Dataset, limit: int) -> None:
    doc = validated(joined(coveragejson_chunks(ds, limit=limit)))
    dims = [d for d in ORDER if d in ds.temp.dims]
    domain = doc["domain"]
    varies = {AXIS[d] for d in dims if ds.sizes[d] > 1}
    if "latitude" in dims:
        assert domain["domainType"] == "Grid"
    else:
        kinds = {frozenset(): "Point", frozenset("t"): "PointSeries"}
        kinds[frozenset("z")] = "VerticalProfile"
        assert domain["domainType"] == kinds.get(frozenset(varies), "Grid")
    for d in dims:
        values = domain["axes"][AXIS[d]]["values"]
        if d == "time":
            values = [np.datetime64(v.removesuffix("Z"), "ns") for v in values]
        np.testing.assert_array_equal(values, ds[d].values)
    temp = doc["ranges"]["temp"]
    assert temp["axisNames"] == [AXIS[d] for d in dims]
    assert temp["dataType"] == "float" and doc["ranges"]["count"]["dataType"] == "integer"
    np.testing.assert_array_equal(covjson_values(temp, np.float32), ds.temp.transpose(*dims).values)
    np.testing.assert_array_equal(
        covjson_values(doc["ranges"]["count"], np.int16), ds["count"].values
    )
    assert doc["parameters"]["temp"]["unit"] == {"symbol": "degC"}


def test_pieces_are_read_as_they_are_written() -> None:
    """A lazy dataset is computed slab by slab while the pieces are taken."""
    computed: list[int] = []

    def block(x: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
        assert block_info is not None
        computed.append(block_info[None]["chunk-location"][0])
        return x

    lazy = dask.array.ones((40, 50, 60), chunks=(1, 50, 60), dtype="f4")
    lazy = lazy.map_blocks(block, dtype="f4")
    ds = xr.Dataset(
        {"v": (("time", "latitude", "longitude"), lazy)},
        coords={
            "time": np.arange(40).astype("M8[D]").astype("M8[ns]"),
            "latitude": np.linspace(-49, 49, 50),
            "longitude": np.linspace(0, 59, 60),
        },
    )
    for encoder in (lambda: csv_chunks(ds, rows=3000), lambda: coveragejson_chunks(ds, limit=3000)):
        computed.clear()
        pieces = encoder()
        for _ in range(4):
            next(pieces)
        assert 0 < len(set(computed)) <= 4
        rest = list(pieces)
        assert len(rest) >= 36 and sorted(set(computed)) == list(range(40))


# --- component results --------------------------------------------------------------------


def result(source: Source, component: str, product: str, **params: Any) -> ComponentResult:
    return run_component(component, params, product, source)[1]


@pytest.mark.parametrize(
    ("component", "product", "params", "domain"),
    [
        ("point-series", NAVY, {"variables": ["UWND", "VWND"], "point": [150.3, -20.1],
                                "datetime": "1985-01-01/1985-12-31"}, "PointSeries"),
        ("vertical-profile", LEVITUS, {"variables": ["TEMP", "SALT"], "point": [-30.2, 40.7]},
         "VerticalProfile"),
        ("vertical-profile", ATLAS, {"variables": ["TEMP"], "point": [-30.2, 40.7],
                                     "datetime": "2000-03-01/2000-04-30"}, "Grid"),
        ("route-sampling", NAVY, {"variables": ["UWND"], "method": "linear", "route": [
            {"lon": 170.0, "lat": -5.0, "time": "1986-01-01"},
            {"lon": -175.0, "lat": -4.0, "time": "1986-01-20"}]}, "Trajectory"),
        ("temporal-aggregation", NAVY, {"variables": ["UWND"], "period": "year",
                                        "area": {"bbox": [160, -10, -160, 10]}}, "Grid"),
        ("regrid", LEVITUS, {"variables": ["TEMP"], "area": {"sea_area": "east-china-sea"},
                             "resolution": 2.5, "depth": [0, 100]}, "Grid"),
        ("area-statistics", COADS, {"variables": ["SST"], "area": {"sea_area": "east-china-sea"},
                                    "percentiles": [50]}, "PolygonSeries"),
        ("area-statistics", LEVITUS, {"variables": ["TEMP"], "area": {"bbox": [120, 20, 135, 40]},
                                      "depth": [100, 100]}, "Polygon"),
    ],
)  # fmt: skip
def test_component_results_as_coveragejson(
    source: Source, component: str, product: str, params: dict[str, Any], domain: str
) -> None:
    res = result(source, component, product, **params)
    assert "coveragejson" in formats(res)
    doc = validated(joined(encode(res, "coveragejson")))
    assert doc["domain"]["domainType"] == domain
    for name, rng in doc["ranges"].items():
        var = res.dataset[name]
        order = [d for d in ("point", *ORDER) if d in var.dims]
        want = var.transpose(*order).values
        np.testing.assert_array_equal(covjson_values(rng, var.dtype), want)
        assert len(rng["axisNames"]) == want.ndim
    if domain == "Trajectory":
        (first, second) = doc["domain"]["axes"]["composite"]["values"]
        assert first[1:] == [170.0, -5.0] and second[1:] == [-175.0, -4.0]
    if domain.startswith("Polygon"):
        assert doc["domain"]["axes"]["composite"]["values"] == [res.area["coordinates"]]
    params_doc = doc["parameters"]
    first = next(iter(params_doc.values()))
    assert first["observedProperty"]["label"]["en"]


def test_several_positions_make_a_coverage_collection(compute_env: Any, source: Source) -> None:
    """What an EDR position query with several points returns."""
    product = source.product(NAVY)
    assert product.version is not None
    ds = compute_env.store.open_version(product.version.store_path)
    sel = selection_from_json(
        {"points": [[150, -20], [-170.3, 10.2], [0, 0]], "variables": ["UWND"],
         "datetime": "1990-01-01/1990-06-30"}
    )  # fmt: skip
    cut = apply(ds, sel).load()
    doc = validated(joined(coveragejson_chunks(cut)))
    assert doc["type"] == "CoverageCollection" and doc["domainType"] == "PointSeries"
    assert len(doc["coverages"]) == 3
    for i, cov in enumerate(doc["coverages"]):
        assert cov["domain"]["axes"]["x"]["values"] == [float(cut.longitude[i])]
        np.testing.assert_array_equal(
            covjson_values(cov["ranges"]["UWND"], np.float32), cut.UWND.isel(point=i).values
        )
    header, _, columns = parse_csv(joined(csv_chunks(cut)))
    assert header[:2] == ["time", "point"] and len(columns["UWND"]) == 6 * 3
    features = FeatureCollection.model_validate_json(geojson_points(cut)).features
    assert [f.geometry.coordinates[:2] for f in features] == [(150, -20), (-170.3, 10.2), (0, 0)]
    for i, feature in enumerate(features):
        assert len(feature.properties["time"]) == 6
        np.testing.assert_array_equal(
            np.array(feature.properties["UWND"], dtype=np.float32), cut.UWND.isel(point=i)
        )


def test_alerts_and_routes_are_valid_geojson(source: Source) -> None:
    alerts = result(
        source, "threshold-alert", NAVY, variable=["UWND", "VWND"], operator="gt",
        threshold=13.9, area={"bbox": [160, -70, -160, -40]}, datetime="1985-01-01/1986-12-31",
    )  # fmt: skip
    assert formats(alerts) == ("csv", "geojson", "netcdf")
    data = joined(encode(alerts, "geojson"))
    collection = FeatureCollection.model_validate_json(data)
    assert len(collection.features) == int(alerts.dataset.alert.sum()) > 0
    doc = json.loads(data)
    lons = [c[0] for f in doc["features"] for c in f["geometry"]["coordinates"]]
    assert min(lons) < -160 + 1e-9 or max(lons) > 160  # across the antimeridian...
    assert all(-180 <= x <= 180 for x in lons)  # ...and still RFC 7946 longitudes
    assert doc["oceanmart"]["sources"][0]["product"] == NAVY
    header, units, columns = parse_csv(joined(encode(alerts, "csv")))
    assert header == ["time", "cells", "area_fraction", "extreme", "alert"]
    assert units[:3] == ["UTC", "1", "1"]
    assert [int(c) for c in columns["cells"]] == alerts.dataset.cells.values.tolist()
    route = result(
        source, "route-sampling", NAVY, variables=["UWND", "VWND"],
        route=[{"lon": 121.5, "lat": 30.2, "time": "1988-07-01T06:00:00Z"},
               {"lon": 125.0, "lat": 28.0, "time": "1988-07-03T18:00:00Z"}],
    )  # fmt: skip
    features = FeatureCollection.model_validate_json(joined(encode(route, "geojson"))).features
    assert [f.geometry.coordinates[:2] for f in features] == [(121.5, 30.2), (125.0, 28.0)]
    assert features[0].properties["UWND"] == pytest.approx(float(route.dataset.UWND[0]))


def test_results_as_netcdf_reopen_equal_with_provenance(source: Source, tmp_path: Path) -> None:
    calls = [
        ("area-statistics", COADS, {"variables": ["SST"], "area": {"bbox": [120, 20, 135, 40]},
                                    "statistics": ["mean", "max"], "group_by": "season"}),
        ("temporal-aggregation", NAVY, {"variables": ["VWND"], "period": "season",
                                        "area": {"bbox": [120, 20, 135, 40]}}),
        ("threshold-alert", COADS, {"variable": "SST", "operator": "gt", "threshold": 28,
                                    "area": {"bbox": [120, -10, 160, 20]}}),
        ("vertical-profile", LEVITUS, {"variables": ["SALT"], "point": [150, -20]}),
    ]  # fmt: skip
    ncdump = require_tool("ncdump")
    for i, (component, product, params) in enumerate(calls):
        res = result(source, component, product, **params)
        path = tmp_path / f"{i}.nc"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. time and its bounds in different units
            path.write_bytes(joined(encode(res, "netcdf")))
        with xr.open_dataset(path) as back:
            for name, var in res.dataset.data_vars.items():
                np.testing.assert_array_equal(back[name].values, var.values)
            assert back.attrs["oceanmart_component"] == component
            assert back.attrs["oceanmart_product"] == product
            version = source.product(product).version
            assert version is not None and back.attrs["oceanmart_version"] == version.id
        header = subprocess.run(
            [ncdump, "-h", str(path)], check=True, capture_output=True, text=True
        )
        assert f':oceanmart_component = "{component}"' in header.stdout
    assert MEDIA_TYPES["netcdf"] == "application/x-netcdf"


def test_formats_a_result_cannot_take_are_refused(source: Source) -> None:
    multi = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[120, 20], [125, 20], [125, 25], [120, 25], [120, 20]]],
            [[[130, 30], [135, 30], [135, 35], [130, 35], [130, 30]]],
        ],
    }
    stats = result(source, "area-statistics", COADS, variables=["SST"], area={"polygon": multi})
    assert stats.area is not None and stats.area["type"] == "MultiPolygon"
    assert formats(stats) == ("csv", "netcdf")
    for fmt in ("coveragejson", "geojson", "xlsx"):
        with pytest.raises(InvalidParameter) as info:
            encode(stats, fmt)
        assert info.value.parameter == "format" and "csv, netcdf" in info.value.detail
    depths = result(
        source, "area-statistics", LEVITUS, variables=["TEMP"], area={"bbox": [0, 0, 10, 10]},
        depth=[0, 100],
    )  # fmt: skip
    assert "coveragejson" not in formats(depths)


# --- the series path of csv_chunks ---------------------------------------------------------


def _reference_csv(ds: xr.Dataset) -> bytes:
    """CSV of a table along one axis written the plain way, one field at a time: what
    ``csv_chunks`` must write, byte for byte, for a point's series or profile."""
    dims = {str(d) for n in ds.data_vars for d in ds[n].dims}
    assert len(dims) == 1
    (dim,) = dims
    names = [dim] if dim in ds.coords else []
    names += [str(c) for c in ds.coords if c != dim and set(ds[c].dims) <= dims]
    names += [str(n) for n in ds.data_vars]

    def text(v: Any) -> str:
        if isinstance(v, np.datetime64):
            return "" if np.isnat(v) else f"{np.datetime_as_string(v, unit='s')}Z"
        if isinstance(v, np.floating):  # (texts of floats: test_float_texts_*)
            return _scalar_text(v)
        return str(v)

    head = io.StringIO()
    writer = csv.writer(head, lineterminator="\n")
    writer.writerow(names)
    writer.writerow(
        ["UTC" if n == "time" or ds[n].dtype.kind == "M" else ds[n].attrs.get("units", "")
         for n in names]
    )  # fmt: skip
    rows = []
    for i in range(ds.sizes[dim]):
        row = [ds[n].values[()] if ds[n].ndim == 0 else ds[n].values[i] for n in names]
        rows.append(",".join(text(v) for v in row) + "\n")
    return (head.getvalue() + "".join(rows)).encode()


def _series_cases() -> list[xr.Dataset]:
    times = np.arange(np.datetime64("2020-01-01", "ns"), np.datetime64("2021-01-01", "ns"), DAY)
    n = times.size
    rng = np.random.default_rng(7)
    sst = rng.normal(15, 8, n).astype(np.float32)
    odd = np.array(
        [np.nan, -0.0, 0.0, 1.225441e-07, -3.4e38, 1e-45, 1e6, 999999.94, 1e-4, 1.0001e-4,
         9.999e-5, 123456.7, -1.5, 16777216.0, np.inf, -np.inf, 0.1, 1048576.25],
        np.float32,
    )  # fmt: skip
    sst[: odd.size] = odd
    point = {"latitude": 62.375, "longitude": -131.625, "point": 0,
             "requested_longitude": -131.537, "requested_latitude": 62.451}  # fmt: skip
    series = xr.Dataset({"sst": ("time", sst, {"units": "degC"})}, coords={"time": times, **point})
    nat = np.datetime64("NaT", "ns")
    with_nat = series.assign_coords(time=np.where(np.arange(n) % 50 == 1, nat, times))
    ints = series.assign(count=("time", rng.integers(-(2**40), 2**40, n)))
    last = series.assign(when=("time", times + np.timedelta64(1, "h"))).assign_coords(
        latitude=1e-7, longitude=float("nan")
    )
    lazy = series.chunk({"time": 100})
    profile = xr.Dataset(
        {"temp": ("depth", rng.normal(4, 2, 33).astype(np.float64)),
         "salt": ("depth", rng.normal(35, 1, 33).astype(np.float32))},
        coords={"depth": np.linspace(0, 5500, 33), "latitude": -10.5, "longitude": 0.5},
    )  # fmt: skip
    one = series.isel(time=slice(0, 1))
    only_variable = xr.Dataset({"x": ("time", sst[:10])})
    return [series, with_nat, ints, last, lazy, profile, one, only_variable]


@pytest.mark.parametrize("case", range(8))
def test_csv_of_a_series_is_written_as_the_plain_way(case: int) -> None:
    """One axis (a point's series or profile) is written by a path of its own: the same
    bytes as the block loop (``rows`` below the length) and a field-by-field reference,
    whatever the values (gaps, -0.0, exponents, integers, instants, lazy data)."""
    ds = _series_cases()[case]
    fast = joined(csv_chunks(ds))
    assert fast == joined(csv_chunks(ds, rows=max(1, ds.sizes[next(iter(ds.sizes))] - 1)))
    assert fast == joined(csv_chunks(ds, rows=1))
    assert fast == _reference_csv(ds)


@pytest.mark.parametrize("product", [NAVY, COADS, LEVITUS, ATLAS])
def test_csv_of_corpus_points_is_written_as_the_plain_way(source: Source, product: str) -> None:
    from catalog.points import cut_point

    info = source.product(product)
    assert info.version is not None
    dims = info.version.dims
    rng = np.random.default_rng(3)
    whole = source.store.open_version(info.version.store_path, dask=False)
    for _ in range(5):
        x = float(rng.uniform(whole.longitude.min(), whole.longitude.max()))
        y = float(rng.uniform(whole.latitude.min(), whole.latitude.max()))
        sel = selection_from_json({"point": [round(x, 3), round(y, 3)]})
        ds, _ = cut_point(source.store, info, sel, 1 << 30)
        fast = joined(csv_chunks(ds))
        assert fast == joined(csv_chunks(ds, rows=1)), (product, x, y, dims)
        if len({d for n in ds.data_vars for d in ds[n].dims}) == 1:
            assert fast == _reference_csv(ds)


def _scalar_text(v: np.floating[Any]) -> str:
    """One NumPy float's text written another way than the encoder's arrays (orjson on
    the scalar; NumPy's ``str`` for float16): the references below."""
    if not np.isfinite(v):
        return ""
    if v.dtype == np.float16:
        return str(v)
    return orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY).decode()  # (scalars are native)


def _read_exactly(text: str, dtype: Any) -> Any:
    """The float of ``dtype`` nearest the decimal ``text`` (ties to the even one)."""
    exact = Fraction(text)
    near = np.array(float(text)).astype(dtype)  # within one step of it
    up, down = np.nextafter(near, dtype.type(np.inf)), np.nextafter(near, dtype.type(-np.inf))
    return min(
        (down, near, up),
        key=lambda c: (abs(Fraction(float(c)) - exact), int(c.view(f"u{dtype.itemsize}")) & 1),
    )


def _digits(text: str) -> str:
    """The significant digits of a number's text."""
    mantissa = text.lstrip("-").split("e")[0]
    return mantissa.replace(".", "").strip("0") or "0"


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, ">f4", ">f8"])
def test_float_texts_read_back_to_the_same_bits_in_the_fewest_digits(dtype: Any) -> None:
    """Every float is written so that reading it back gives the same bits, in no more
    significant digits than NumPy's shortest text; NaN and infinities as the missing
    text; one value alone (a constant column) as within an array; other byte orders and
    strided arrays alike. Read back exactly (the nearest float of its width): reading
    through float64 first, as Python and pandas do, double-rounds a few float32 texts
    (7.038531e-26, NumPy's text too). Every finite float32 was checked once, outside the
    suite (README, Data access)."""
    rng = np.random.default_rng(5)
    width = np.dtype(dtype).itemsize
    bits = rng.integers(0, 256, 200_000 * width, dtype=np.uint8)
    extra = [0.0, -0.0, 1e-4, 9.999e-5, 1e6, 999999.94, 0.1, 62.375, -131.537, 1e-7, 65504.0,
             6e-8, 16777216.0, 16777217.0, 123456789.0, 1e16, 1e15, 3.4e38, 1e-45]  # fmt: skip
    values = np.concatenate([bits.view(dtype), np.array(extra).astype(dtype)])
    strided = values[::2]
    for array in (values, strided):
        texts = _float_strings(array, "~")
        finite = np.isfinite(array)
        assert [t for t, f in zip(texts, finite, strict=True) if not f] == ["~"] * int(
            (~finite).sum()
        )
        written = [t for t, f in zip(texts, finite, strict=True) if f]
        want = array[finite]
        back = np.array(written, dtype=np.float64).astype(array.dtype)
        for i in np.flatnonzero(back != want):  # (rare: reading through float64 double-rounds)
            back[i] = _read_exactly(written[i], want.dtype)
        assert back.tobytes() == want.tobytes()
        shortest = array[finite].astype(str).tolist()
        longer = [
            (t, r)
            for t, r in zip(written, shortest, strict=True)
            if len(_digits(t)) > len(_digits(r))
        ]
        assert longer == []
    for i in range(0, values.size, 997):
        assert _one_text(values[i : i + 1].reshape(())) == _scalar_text(values[i])
    twice = np.array([0x15AE43FD], np.uint32).view(np.float32)  # double-rounds via float64
    (text,) = _float_strings(twice, "")
    assert text == "7.038531e-26" and _read_exactly(text, twice.dtype) == twice[0]
