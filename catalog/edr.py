"""OGC API - Environmental Data Retrieval (EDR 1.1) queries as selections.

Each EDR query (``position``, ``area``, ``cube``, ``trajectory``, ``radius``) is turned
into the selection JSON of ``catalog.selection`` and so planned, priced, limited and cut
exactly like every other selection. Choices where EDR leaves room (written down here and
in the README):

- ``z`` is a depth in metres (our products' vertical axis): one level ``z=10`` or a
  range ``z=0/100``; lists and ``R`` intervals are refused with a 400 naming ``z``.
- ``position`` with a POINT or MULTIPOINT samples the nearest cell (``method=linear``
  gives bilinear interpolation).
- ``trajectory`` with ``LINESTRING M (lon lat epoch-seconds, ...)`` samples each vertex
  at its own time (a ship track); a plain ``LINESTRING`` samples its vertices over the
  ``datetime`` range.
- ``radius`` is approximated by a 64-sided polygon on a local equirectangular
  projection around the centre (good to well under a cell for radii below ~500 km).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from oceanmart.errors import InvalidParameter

QUERIES = ("position", "area", "cube", "trajectory", "radius")
EARTH_RADIUS_KM = 6371.0088
UNITS_KM = {"km": 1.0, "m": 0.001, "mi": 1.609344, "nm": 1.852}


# One POINT of two plain numbers, as clients write it ("POINT(-30.2 10.1)"), read without
# shapely (~0.05 ms of a point query); anything else goes through shapely.
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_POINT = re.compile(rf"\s*POINT\s*\(\s*({_NUMBER})\s+({_NUMBER})\s*\)\s*", re.IGNORECASE)


def _geometry(coords: str | None) -> Any:
    import shapely

    if coords is None or not coords.strip():
        raise InvalidParameter("coords", "give a WKT geometry")
    try:
        return shapely.from_wkt(coords)
    except (shapely.errors.ShapelyError, ValueError) as exc:
        raise InvalidParameter("coords", f"not WKT ({str(exc).splitlines()[0]})") from None


def _z(z: str | None) -> list[float] | None:
    if z is None or not z.strip():
        return None
    text = z.strip()
    if "," in text or text.upper().startswith("R"):
        raise InvalidParameter("z", "give one depth (z=10) or a range (z=0/100)")
    parts = text.split("/")
    if len(parts) > 2:
        raise InvalidParameter("z", "give one depth (z=10) or a range (z=0/100)")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameter("z", f"{text!r} is not a depth in metres") from None
    if not all(math.isfinite(v) for v in values):
        raise InvalidParameter("z", "depths must be finite")
    return values * 2 if len(values) == 1 else values


def _circle(lon: float, lat: float, radius_km: float) -> str:
    import shapely
    from shapely.geometry import Polygon

    dlat = math.degrees(radius_km / EARTH_RADIUS_KM)
    coslat = math.cos(math.radians(lat))
    if coslat < 1e-6 or lat + dlat > 90 or lat - dlat < -90:
        raise InvalidParameter("within", "the circle reaches a pole")
    dlon = dlat / coslat
    ring = [
        (lon + dlon * math.cos(a), lat + dlat * math.sin(a))
        for a in (2 * math.pi * k / 64 for k in range(64))
    ]
    return str(shapely.to_wkt(Polygon(ring), rounding_precision=9, trim=True))


def _epoch(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        raise InvalidParameter("coords", f"M value {seconds!r} is not a time") from None


def selection(
    query: str,
    *,
    coords: str | None = None,
    bbox: str | None = None,
    z: str | None = None,
    datetime_: str | None = None,
    parameter_name: str | None = None,
    within: str | None = None,
    within_units: str | None = None,
    method: str | None = None,
) -> dict[str, Any]:
    """The selection JSON for one EDR query (validated later by selection_from_json)."""
    import shapely

    out: dict[str, Any] = {}
    if query == "cube":
        if bbox is None:
            raise InvalidParameter("bbox", "a cube query needs bbox=west,south,east,north")
        out["bbox"] = bbox
    elif query == "position":
        one = _POINT.fullmatch(coords or "")
        if one is not None:  # as shapely reads it (tests/catalog/test_selection.py)
            out["points"] = [[float(one[1]), float(one[2])]]
        else:
            geom = _geometry(coords)
            if geom.geom_type not in ("Point", "MultiPoint"):
                raise InvalidParameter("coords", "a position query takes a POINT or MULTIPOINT")
            out["points"] = [[float(x), float(y)] for x, y in shapely.get_coordinates(geom)]
    elif query == "area":
        geom = _geometry(coords)
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise InvalidParameter("coords", "an area query takes a POLYGON or MULTIPOLYGON")
        out["polygon"] = coords
    elif query == "trajectory":
        geom = _geometry(coords)
        if geom.geom_type != "LineString":
            raise InvalidParameter("coords", "a trajectory query takes a LINESTRING")
        if geom.has_z:
            raise InvalidParameter("coords", "use z= for depth; LINESTRING Z is not supported")
        if geom.has_m:
            if datetime_:
                raise InvalidParameter("datetime", "the LINESTRING M already gives the times")
            out["route"] = [
                {"lon": float(x), "lat": float(y), "time": _epoch(float(t))}
                for x, y, t in shapely.get_coordinates(geom, include_m=True)
            ]
        else:
            out["points"] = [[float(x), float(y)] for x, y in shapely.get_coordinates(geom)]
    elif query == "radius":
        geom = _geometry(coords)
        if geom.geom_type != "Point":
            raise InvalidParameter("coords", "a radius query takes a POINT")
        try:
            distance = float(within or "")
        except ValueError:
            raise InvalidParameter("within", "give the radius as a number") from None
        if not 0 < distance < math.inf:
            raise InvalidParameter("within", "the radius must be positive")
        unit = (within_units or "").strip().lower()
        if unit not in UNITS_KM:
            raise InvalidParameter("within-units", f"one of {', '.join(UNITS_KM)}")
        out["polygon"] = _circle(geom.x, geom.y, distance * UNITS_KM[unit])
    else:
        raise InvalidParameter("query", f"one of {', '.join(QUERIES)}")
    if (depth := _z(z)) is not None:
        out["depth"] = depth
    if datetime_:
        out["datetime"] = datetime_
    if parameter_name:
        out["variables"] = [p.strip() for p in parameter_name.split(",") if p.strip()]
    if method and ("points" in out or "route" in out):
        out["method"] = method
    return out
