from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.selection import (
    BBox,
    canonical,
    parse_bbox,
    parse_range,
    parse_selection,
    parse_variables,
    selection_from_json,
    subset_id,
)
from oceanmart.errors import InvalidParameter

lons = st.floats(-180, 180, allow_nan=False)
lats = st.floats(-90, 90, allow_nan=False)


@given(w=lons, e=lons, a=lats, b=lats)
def test_any_valid_box_parses_to_normal_form(w: float, e: float, a: float, b: float) -> None:
    s, n = sorted((a, b))
    box = parse_bbox(f"{w!r},{s!r},{e!r},{n!r}")
    assert -180 <= box.west < 180 or box.global_longitudes
    assert -180 < box.east <= 180
    assert (box.south, box.north) == (s, n)
    if w < e and e - w < 360:  # a span that computes to 360 degrees is the whole globe
        assert (box.west, box.east) == (w, e)
        assert not box.crosses_antimeridian
    elif w < e:
        assert box.global_longitudes


@given(w=st.floats(0, 360, allow_nan=False), width=st.floats(0.5, 359, allow_nan=False))
def test_0_360_longitudes_mean_the_same_box(w: float, width: float) -> None:
    e = w + width
    if e > 360:
        return
    box = parse_bbox(f"{w!r},-10,{e!r},10")
    # the box covers the same meridians: width is kept modulo 360
    span = (box.east - box.west) % 360 or 360
    assert math.isclose(span, width, abs_tol=1e-6) or math.isclose(span, width % 360, abs_tol=1e-6)


def test_crossing_the_antimeridian() -> None:
    box = parse_bbox("170,-10,-170,10")
    assert box == BBox(170, -10, -170, 10) and box.crosses_antimeridian
    assert parse_bbox("350,-20,10,20") == BBox(-10, -20, 10, 20)
    assert parse_bbox("-180,-90,180,90").global_longitudes
    assert parse_bbox("0,-90,360,90").global_longitudes


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1,2,3", "expected 4"),
        ("a,2,3,4", "'a' is not a number"),
        ("0,-91,10,10", "outside -90..90"),
        ("0,10,10,95", "outside -90..90"),
        ("0,20,10,10", "north of north"),
        ("-200,0,10,10", "outside -180..360"),
        ("0,0,nan,10", "not a finite number"),
        ("0,0,inf,10", "not a finite number"),
    ],
)
def test_malformed_boxes_name_the_parameter(text: str, why: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_bbox(text)
    assert info.value.parameter == "bbox"
    assert why in info.value.detail


def test_ranges_and_variables() -> None:
    assert parse_range("depth", "0,100") == (0.0, 100.0)
    assert parse_range("depth", "50") == (50.0, 50.0)
    with pytest.raises(InvalidParameter, match="greater than"):
        parse_range("depth", "100,0")
    assert parse_variables("TEMP, SALT,TEMP") == ("TEMP", "SALT")
    with pytest.raises(InvalidParameter):
        parse_variables(" , ")
    sel = parse_selection(bbox="-10,-20,10,20", depth="0,100", variables="TEMP")
    assert sel.bbox == BBox(-10, -20, 10, 20) and sel.depth == (0, 100)


# --- canonical form and subset ids -------------------------------------------------------


def _sid(doc: dict[str, object]) -> str:
    return subset_id("p", "v", selection_from_json(doc))


@st.composite
def written_twice(draw: st.DrawFn) -> tuple[dict[str, object], dict[str, object]]:
    """One selection written two different but equivalent ways."""
    w = draw(st.integers(-179, 170))
    e = draw(st.integers(w + 1, 179))
    s = draw(st.integers(-89, 0))
    n = draw(st.integers(s + 1, 89))
    names = draw(st.lists(st.sampled_from(["TEMP", "SALT", "UWND"]), min_size=1, unique=True))
    day = draw(st.dates(min_value=date(1982, 1, 1), max_value=date(1992, 12, 31)))
    a: dict[str, object] = {
        "bbox": [w, s, e, n],
        "variables": names,
        "datetime": f"{day.isoformat()}T00:00:00Z/..",
        "depth": [0, 100],
    }
    b: dict[str, object] = {
        "bbox": f"{w + 360 if w < 0 else w}.0,{s},{e}.000,{n}",
        "variables": ",".join(reversed(names + names[:1])),
        "datetime": f"{day.isoformat()}T08:00:00+08:00/..",
        "depth": "0.0,100",
    }
    ring = [[w, s], [e, s], [e, n], [w, n]]
    k = draw(st.integers(0, 3))
    rotated = ring[k:] + ring[:k]
    if draw(st.booleans()):
        rotated = rotated[::-1]
    wkt = ", ".join(f"{x} {y}" for x, y in [*ring, ring[0]])
    if draw(st.booleans()):
        a = {key: v for key, v in a.items() if key != "bbox"} | {"polygon": f"POLYGON(({wkt}))"}
        b = {key: v for key, v in b.items() if key != "bbox"} | {
            "polygon": {"type": "Polygon", "coordinates": [[*rotated, rotated[0]]]}
        }
    return a, b


@given(written_twice())
def test_equivalent_selections_get_the_same_subset_id(pair: tuple[dict, dict]) -> None:  # type: ignore[type-arg]
    a, b = pair
    assert canonical(selection_from_json(a)) == canonical(selection_from_json(b))
    assert _sid(a) == _sid(b)


@given(written_twice(), st.sampled_from(["bbox", "variables", "datetime", "depth", "stride"]))
def test_different_selections_get_different_ids(pair: tuple[dict, dict], change: str) -> None:  # type: ignore[type-arg]
    a, _ = pair
    other = dict(a)
    if change == "bbox" and "bbox" in a:
        w, s, e, n = a["bbox"]  # type: ignore[misc]
        other["bbox"] = [w, s, e, n - 0.5]
    elif change == "variables":
        other["variables"] = [*a["variables"], "VWND"]  # type: ignore[misc]
    elif change == "datetime":
        other["datetime"] = "1970-01-01/.."
    elif change == "depth":
        other["depth"] = [0, 100.5]
    else:
        other["stride"] = 2
    if other == a:
        return
    assert _sid(a) != _sid(other)
    assert subset_id("p", "v", selection_from_json(a)) != subset_id(
        "p", "v2", selection_from_json(a)
    )


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"polygon": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}}, "polygon"),
        ({"polygon": "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))"}, "polygon"),  # a bow tie
        ({"polygon": "POLYGON((0 0, 1 0, 1 1))"}, "polygon"),
        ({"datetime": "1990-01-01/1980-01-01"}, "datetime"),
        ({"stride": 0}, "stride"),
        ({"stride": {"space": 1, "time": -2}}, "stride"),
        ({"bbox": [0, 10, 5, 0]}, "bbox"),
        ({"points": []}, "points"),
        ({"point": [10, 95]}, "point"),
        ({"route": [{"lon": 1, "lat": 2}]}, "route"),
        ({"method": "cubic", "point": [1, 2]}, "method"),
        ({"bbox": [0, 0, 1, 1], "polygon": "POLYGON((0 0, 1 0, 1 1, 0 0))"}, "polygon"),
        ({"colour": "blue"}, "colour"),
        ({"variables": []}, "variables"),
    ],
)
def test_bad_selections_name_their_field(doc: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        selection_from_json(doc)
    assert err.value.parameter == field


@pytest.mark.parametrize(
    "coords",
    ["POINT(-30.2 10.1)", "point (1e2 -.5)", " POINT ( +179.999999999999999 -89.75 ) ",
     "POINT(0 0)", "POINT(1. 2.)", "POINT(-0 1E-3)", "POINT(12345678901234567890 3)"],
)  # fmt: skip
def test_one_point_reads_as_shapely_reads_it(coords: str) -> None:
    """One POINT is read without shapely (``catalog.edr._POINT``): the same numbers."""
    import shapely

    from catalog import edr

    assert edr._POINT.fullmatch(coords) is not None
    want = [[float(x), float(y)] for x, y in shapely.get_coordinates(shapely.from_wkt(coords))]
    assert edr.selection("position", coords=coords)["points"] == want


@pytest.mark.parametrize(
    "coords", ["POINT Z (1 2 3)", "POINT(1 2 3)", "POINT EMPTY", "POINT(nan 1)", "POINT(1 2"]
)
def test_other_points_go_through_shapely(coords: str) -> None:
    import shapely

    from catalog import edr

    assert edr._POINT.fullmatch(coords) is None
    try:
        got = edr.selection("position", coords=coords)["points"]
    except InvalidParameter as exc:
        assert exc.parameter == "coords"
    else:
        want = shapely.get_coordinates(shapely.from_wkt(coords))
        assert np.array_equal(np.asarray(got).reshape(-1, 2), want, equal_nan=True)
