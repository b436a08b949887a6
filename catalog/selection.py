"""Selections: what a buyer asks for, parsed from text into one canonical value.

A bounding box includes every cell whose centre lies inside it, both ends included
(the behaviour of CDO ``sellonlatbox`` and NCO ``ncks -d``). ``west > east`` means the
box crosses the antimeridian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from oceanmart.errors import InvalidParameter


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
