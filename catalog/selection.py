"""Selections: what a buyer asks for, parsed (from query text or JSON) into one value.

A bounding box includes every cell whose centre lies inside it, both ends included
(the behaviour of CDO ``sellonlatbox`` and NCO ``ncks -d``). ``west > east`` means the
box crosses the antimeridian. A polygon or a named sea area selects the cells of its
bounding box and masks those whose centre is outside. Points and routes take the
nearest cell (``method="nearest"``) or the four around it (``"linear"``).

``canonical`` writes a selection in one form (sorted variables, wrapped longitudes,
UTC instants, normalised polygon WKT, rounded numbers), so the same selection written
differently gets the same ``subset_id``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from oceanmart.errors import InvalidParameter

METHODS = ("nearest", "linear")
MAX_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class BBox:
    west: float  # -180 <= west < 180
    south: float
    east: float  # -180 < east <= 180
    north: float

    @property
    def crosses_antimeridian(self) -> bool:
        return self.west > self.east

    @property
    def global_longitudes(self) -> bool:
        return self.west == -180.0 and self.east == 180.0


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Inclusive instants (naive UTC, as CF times are stored); None is an open end."""

    start: datetime | None
    end: datetime | None


@dataclass(frozen=True, slots=True)
class Selection:
    bbox: BBox | None = None
    depth: tuple[float, float] | None = None
    time: TimeRange | None = None
    variables: tuple[str, ...] | None = None
    sea_area: str | None = None
    polygon: str | None = None  # normalised WKT, longitudes as given (may pass 180)
    points: tuple[tuple[float, float], ...] | None = None  # (lon, lat)
    route: tuple[tuple[float, float, datetime], ...] | None = None  # (lon, lat, time)
    times: tuple[datetime, ...] | None = None  # instants: the nearest time step of each
    method: str = "nearest"
    stride: tuple[int, int] = (1, 1)  # (every n-th cell in lat/lon, every n-th time step)


def _numbers(parameter: str, text: str, count: int) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != count:
        raise InvalidParameter(parameter, f"expected {count} comma-separated numbers, got {text!r}")
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise InvalidParameter(parameter, f"{p!r} is not a number") from None
        if not math.isfinite(v):
            raise InvalidParameter(parameter, f"{p!r} is not a finite number")
        values.append(v)
    return values


def _wrap(lon: float) -> float:
    return ((lon + 180.0) % 360.0) - 180.0


def parse_bbox(text: str) -> BBox:
    """Parse ``west,south,east,north`` in degrees; longitudes may be given as 0..360."""
    w, s, e, n = _numbers("bbox", text, 4)
    for name, lon in (("west", w), ("east", e)):
        if not -180.0 <= lon <= 360.0:
            raise InvalidParameter("bbox", f"{name} longitude {lon:g} is outside -180..360")
    for name, lat in (("south", s), ("north", n)):
        if not -90.0 <= lat <= 90.0:
            raise InvalidParameter("bbox", f"{name} latitude {lat:g} is outside -90..90")
    if s > n:
        raise InvalidParameter("bbox", f"south {s:g} is north of north {n:g}")
    if w <= e and e - w >= 360.0:
        return BBox(-180.0, s, 180.0, n)
    west = w if -180.0 <= w < 180.0 else _wrap(w)
    east = e if -180.0 < e <= 180.0 else _wrap(e)
    if east == -180.0:
        east = 180.0
    return BBox(west, s, east, n)


def parse_range(parameter: str, text: str) -> tuple[float, float]:
    """Parse ``min,max`` (or a single value meaning both)."""
    parts = text.split(",")
    values = _numbers(parameter, text, 2 if len(parts) > 1 else 1)
    lo, hi = (values[0], values[-1])
    if lo > hi:
        raise InvalidParameter(parameter, f"minimum {lo:g} is greater than maximum {hi:g}")
    return lo, hi


def _instant(text: str) -> datetime | None:
    text = text.strip()
    if text in ("", ".."):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(
            "datetime", f"{text!r} is not an ISO 8601 date or date-time"
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def parse_datetime(text: str) -> TimeRange:
    """Parse ``start/end`` (either end may be ``..``) or a single instant, as in OGC APIs."""
    parts = text.split("/")
    if len(parts) > 2:
        raise InvalidParameter("datetime", "expected an instant or start/end")
    start, end = _instant(parts[0]), _instant(parts[-1])
    if len(parts) == 1 and start is None:
        raise InvalidParameter("datetime", "give an instant or an interval")
    if start is not None and end is not None and start > end:
        raise InvalidParameter("datetime", f"start {parts[0]} is after end {parts[-1]}")
    return TimeRange(start, end)


def parse_variables(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not names:
        raise InvalidParameter("variables", "give at least one variable name")
    return names


def parse_selection(
    bbox: str | None = None,
    depth: str | None = None,
    variables: str | None = None,
    datetime: str | None = None,
    sea_area: str | None = None,
) -> Selection:
    if sea_area is not None and not sea_area.strip():
        raise InvalidParameter("sea_area", "give a sea area id")
    return Selection(
        sea_area=sea_area.strip() if sea_area else None,
        bbox=parse_bbox(bbox) if bbox else None,
        depth=parse_range("depth", depth) if depth else None,
        time=parse_datetime(datetime) if datetime else None,
        variables=parse_variables(variables) if variables else None,
    )


# --- JSON selections (POST bodies) and the canonical form --------------------------------

_KEYS = {
    "bbox", "polygon", "sea_area", "point", "points", "route", "datetime", "times", "depth",
    "variables", "method", "stride",
}  # fmt: skip


def _floats(parameter: str, value: object, count: int | None = None) -> list[float]:
    if isinstance(value, str):
        return _numbers(parameter, value, count or len(value.split(",")))
    if not isinstance(value, list | tuple) or (count is not None and len(value) != count):
        want = f"{count} numbers" if count else "a list of numbers"
        raise InvalidParameter(parameter, f"expected {want}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise InvalidParameter(parameter, f"{v!r} is not a finite number")
        out.append(float(v))
    return out


def _lonlat(parameter: str, value: object) -> tuple[float, float]:
    lon, lat = _floats(parameter, value, 2)
    if not -180.0 <= lon <= 360.0 or not -90.0 <= lat <= 90.0:
        raise InvalidParameter(parameter, f"({lon:g}, {lat:g}) is not a lon, lat position")
    return _wrap(lon) if lon >= 180.0 else lon, lat


def parse_polygon(value: object) -> str:
    """A GeoJSON Polygon/MultiPolygon or WKT text -> normalised WKT; refuses open rings
    and self-intersections (shapely would silently close or accept them)."""
    import shapely
    from shapely.geometry import shape

    try:
        if isinstance(value, str):
            geom = shapely.from_wkt(value)
        elif isinstance(value, dict):
            if value.get("type") not in ("Polygon", "MultiPolygon"):
                raise InvalidParameter("polygon", "expected a GeoJSON Polygon or MultiPolygon")
            rings = value.get("coordinates")
            polys = [rings] if value["type"] == "Polygon" else rings
            for poly in polys or []:
                for ring in poly or []:
                    if not ring or list(ring[0]) != list(ring[-1]):
                        raise InvalidParameter(
                            "polygon", "a ring does not close (first and last positions differ)"
                        )
            geom = shape(value)
        else:
            raise InvalidParameter("polygon", "expected GeoJSON geometry or WKT text")
    except InvalidParameter:
        raise
    except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, IndexError) as exc:
        reason = str(exc).split("\n")[0]
        raise InvalidParameter("polygon", f"not a valid polygon ({reason})") from None
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidParameter("polygon", "expected a Polygon or MultiPolygon")
    if not geom.is_valid:
        raise InvalidParameter("polygon", f"invalid polygon: {shapely.is_valid_reason(geom)}")
    w, s, e, n = geom.bounds
    if s < -90 or n > 90 or w < -180 or e > 360 or e - w > 360:
        raise InvalidParameter("polygon", "coordinates must be lon, lat degrees")
    return str(shapely.to_wkt(shapely.normalize(geom), rounding_precision=9, trim=True))


def polygon_bbox(wkt: str) -> BBox:
    import shapely

    w, s, e, n = shapely.from_wkt(wkt).bounds
    return parse_bbox(f"{w},{s},{e},{n}")


def _stride(value: object) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        space = time = value
    elif isinstance(value, dict) and set(value) <= {"space", "time"}:
        space, time = value.get("space", 1), value.get("time", 1)
    else:
        raise InvalidParameter("stride", 'expected a positive integer or {"space": n, "time": n}')
    for v in (space, time):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidParameter("stride", f"{v!r}: a stride is a positive integer")
    return space, time


def _time_text(parameter: str, value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidParameter(parameter, f"{value!r} is not an ISO 8601 date-time")
    try:
        instant = _instant(value)
    except InvalidParameter as exc:
        raise InvalidParameter(parameter, exc.detail.split(": ", 1)[-1]) from None
    if instant is None:
        raise InvalidParameter(parameter, "give a date-time")
    return instant


def selection_from_json(doc: object) -> Selection:
    """Parse the ``selection`` object of a POST body (see the README for its fields)."""
    if not isinstance(doc, dict):
        raise InvalidParameter("selection", "expected a JSON object")
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise InvalidParameter(
            unknown[0], f"unknown selection field (known: {', '.join(sorted(_KEYS))})"
        )
    spatial = [k for k in ("bbox", "polygon", "point", "points", "route") if k in doc]
    if len(spatial) > 1 or (spatial and spatial != ["bbox"] and "sea_area" in doc):
        raise InvalidParameter(spatial[-1], "give one of bbox, polygon, sea_area, point(s), route")
    sel: dict[str, object] = {}
    if "bbox" in doc:
        raw = doc["bbox"]
        text = raw if isinstance(raw, str) else ",".join(map(repr, _floats("bbox", raw, 4)))
        sel["bbox"] = parse_bbox(text)
    if "polygon" in doc:
        sel["polygon"] = parse_polygon(doc["polygon"])
    if "sea_area" in doc:
        area = doc["sea_area"]
        if not isinstance(area, str) or not area.strip():
            raise InvalidParameter("sea_area", "give a sea area id")
        sel["sea_area"] = area.strip()
    if "point" in doc or "points" in doc:
        key = "point" if "point" in doc else "points"
        raw = [doc[key]] if key == "point" else doc[key]
        if not isinstance(raw, list) or not raw or len(raw) > MAX_POINTS:
            raise InvalidParameter(key, f"expected 1 to {MAX_POINTS} [lon, lat] positions")
        sel["points"] = tuple(_lonlat(key, p) for p in raw)
    if "route" in doc:
        raw = doc["route"]
        if not isinstance(raw, list) or len(raw) < 1 or len(raw) > MAX_POINTS:
            raise InvalidParameter("route", f"expected 1 to {MAX_POINTS} positions with times")
        route = []
        for p in raw:
            if not isinstance(p, dict) or set(p) != {"lon", "lat", "time"}:
                raise InvalidParameter("route", 'each position is {"lon", "lat", "time"}')
            lon, lat = _lonlat("route", [p["lon"], p["lat"]])
            route.append((lon, lat, _time_text("route", p["time"])))
        sel["route"] = tuple(route)
    if "datetime" in doc:
        if "route" in doc or "times" in doc:
            raise InvalidParameter("datetime", "a route or times already fix the time")
        if not isinstance(doc["datetime"], str):
            raise InvalidParameter("datetime", "expected ISO 8601 text")
        sel["time"] = parse_datetime(doc["datetime"])
    if "times" in doc:
        raw = doc["times"]
        if "route" in doc or not isinstance(raw, list) or not raw or len(raw) > MAX_POINTS:
            raise InvalidParameter("times", f"expected 1 to {MAX_POINTS} instants")
        sel["times"] = tuple(sorted({_time_text("times", t) for t in raw}))
    if "depth" in doc:
        raw = doc["depth"]
        text = raw if isinstance(raw, str) else ",".join(map(repr, _floats("depth", raw)))
        sel["depth"] = parse_range("depth", text)
    if "variables" in doc:
        raw = doc["variables"]
        if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
            raw = ",".join(raw)
        if not isinstance(raw, str):
            raise InvalidParameter("variables", "expected a list of names")
        sel["variables"] = parse_variables(raw)
    if "method" in doc:
        if doc["method"] not in METHODS:
            raise InvalidParameter("method", f"one of {', '.join(METHODS)}")
        if "points" not in sel and "route" not in sel:
            raise InvalidParameter("method", "applies to point and route selections")
        sel["method"] = doc["method"]
    if "stride" in doc:
        sel["stride"] = _stride(doc["stride"])
    return Selection(**sel)  # type: ignore[arg-type]


def _num(x: float) -> float | int:
    r = round(x, 9)
    return int(r) if r == int(r) else r


def _iso(t: datetime) -> str:
    return t.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def canonical(sel: Selection) -> dict[str, object]:
    """The one JSON form of a selection (keys sorted when serialised)."""
    out: dict[str, object] = {}
    if sel.bbox is not None:
        b = sel.bbox
        out["bbox"] = [_num(b.west), _num(b.south), _num(b.east), _num(b.north)]
    if sel.polygon is not None:
        out["polygon"] = sel.polygon
    if sel.sea_area is not None:
        out["sea_area"] = sel.sea_area
    if sel.points is not None:
        out["points"] = [[_num(x), _num(y)] for x, y in sel.points]
    if sel.route is not None:
        out["route"] = [[_num(x), _num(y), _iso(t)] for x, y, t in sel.route]
    if sel.points is not None or sel.route is not None:
        out["method"] = sel.method
    if sel.time is not None:
        out["datetime"] = "/".join(
            ".." if t is None else _iso(t) for t in (sel.time.start, sel.time.end)
        )
    if sel.times is not None:
        out["times"] = [_iso(t) for t in sel.times]
    if sel.depth is not None:
        out["depth"] = [_num(sel.depth[0]), _num(sel.depth[1])]
    if sel.variables is not None:
        out["variables"] = sorted(sel.variables)
    if sel.stride != (1, 1):
        out["stride"] = {"space": sel.stride[0], "time": sel.stride[1]}
    return out


def subset_id(product_id: str, version_id: str, sel: Selection) -> str:
    """Deterministic id of a selection of one product version: ``sub_`` + 24 hex."""
    return canonical_subset_id(product_id, version_id, canonical(sel))


def canonical_subset_id(product_id: str, version_id: str, canon: dict[str, object]) -> str:
    """``subset_id`` of a selection whose ``canonical`` form is ``canon``."""
    import hashlib
    import json

    doc = {"product": product_id, "version": version_id, "selection": canon}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sub_" + hashlib.sha256(text.encode()).hexdigest()[:24]
