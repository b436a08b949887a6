from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.selection import BBox, parse_bbox, parse_range, parse_selection, parse_variables
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
