"""Named sea areas, islands and other polygons, stored as GeoJSON in the catalog and
rasterised on demand onto any product grid (a cell belongs to an area when its centre
is inside, as for bounding boxes).

shapely 2's vectorised ``contains_xy`` does the rasterisation; regionmask would wrap the
same test with more machinery than a mask of cell centres needs.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import JSON, Float, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from oceanmart.db import Base, UTCDateTime, utcnow
from oceanmart.errors import InvalidInput, InvalidParameter, NotFound

KINDS = ("sea-area", "island", "country", "land")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class SeaArea(Base):
    __tablename__ = "sea_areas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(200))
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    bbox: Mapped[list[float]] = mapped_column(JSON)
    area_km2: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True, slots=True)
class AreaFeature:
    """A polygon with its names, as read from GeoJSON, a shapefile or GSHHS."""

    id: str
    name_en: str
    name_zh: str
    kind: str
    geometry: BaseGeometry
    source: str
    area_km2: float = 0.0


@dataclass(frozen=True, slots=True)
class SeaAreaInfo:
    id: str
    name_en: str
    name_zh: str
    kind: str
    source: str
    bbox: tuple[float, float, float, float]
    area_km2: float
    geometry: dict[str, Any]


def _info(row: SeaArea) -> SeaAreaInfo:
    w, s, e, n = row.bbox
    return SeaAreaInfo(
        row.id,
        row.name_en,
        row.name_zh,
        row.kind,
        row.source,
        (w, s, e, n),
        row.area_km2,
        row.geometry,
    )


def feature_from_geojson(doc: dict[str, Any], source: str, kind: str = "sea-area") -> AreaFeature:
    """An AreaFeature from a GeoJSON Feature whose properties carry id, name_en, name_zh."""
    props = doc.get("properties") or {}
    ident = str(props.get("id") or doc.get("id") or "")
    if not ident:
        raise InvalidInput("a sea area feature needs an id property")
    try:
        geom = shape(doc["geometry"])
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.ShapelyError) as exc:
        raise InvalidInput(f"sea area {ident!r}: not a GeoJSON geometry ({exc})") from None
    return AreaFeature(
        id=ident,
        name_en=str(props.get("name_en") or props.get("name") or ident),
        name_zh=str(props.get("name_zh", "")),
        kind=str(props.get("kind", kind)),
        geometry=geom,
        source=source,
    )


def validate_feature(feature: AreaFeature) -> BaseGeometry:
    if not _ID.match(feature.id):
        raise InvalidInput(f"sea area id {feature.id!r}: use lower-case letters, digits and '-'")
    if feature.kind not in KINDS:
        raise InvalidInput(f"sea area kind {feature.kind!r}: one of {', '.join(KINDS)}")
    geom = feature.geometry
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(f"sea area {feature.id!r}: needs a Polygon or MultiPolygon")
    w, s, e, n = geom.bounds
    if s < -90 or n > 90 or w < -180 or e > 360:
        raise InvalidInput(f"sea area {feature.id!r}: coordinates must be lon/lat degrees")
    return geom if geom.is_valid else shapely.make_valid(geom)


def save_areas(session: Session, features: list[AreaFeature]) -> list[SeaAreaInfo]:
    """Insert or replace areas by id (an operator re-drawing an area replaces it)."""
    out = []
    for f in features:
        geom = validate_feature(f)
        row = session.get(SeaArea, f.id) or SeaArea(id=f.id, created_at=utcnow())
        row.name_en, row.name_zh, row.kind, row.source = f.name_en, f.name_zh, f.kind, f.source
        row.geometry = mapping(geom)
        row.bbox = [float(v) for v in geom.bounds]
        row.area_km2 = f.area_km2
        session.add(row)
        out.append(row)
    session.flush()
    return [_info(r) for r in out]


def list_areas(session: Session, kind: str | None = None) -> list[SeaAreaInfo]:
    stmt = select(SeaArea).order_by(SeaArea.id)
    if kind is not None:
        stmt = stmt.where(SeaArea.kind == kind)
    return [_info(r) for r in session.scalars(stmt)]


def get_area(session: Session, area_id: str) -> SeaAreaInfo:
    row = session.get(SeaArea, area_id)
    if row is None:
        raise NotFound(f"no sea area {area_id!r}", extensions={"sea_area": area_id})
    return _info(row)


def resolve_area(session: Session, area_id: str) -> SeaAreaInfo:
    """The sea area a selection names; an unknown id is a bad selection (400), not a
    missing resource."""
    try:
        return get_area(session, area_id)
    except NotFound:
        raise InvalidParameter("sea_area", f"no sea area {area_id!r} (see /v1/sea-areas)") from None


@functools.lru_cache(maxsize=128)
def _rasterise(wkb: bytes, lon: bytes, lat: bytes) -> np.ndarray:
    geom = shapely.from_wkb(wkb)
    shapely.prepare(geom)
    x = np.frombuffer(lon, dtype="f8")
    y = np.frombuffer(lat, dtype="f8")
    xx, yy = np.meshgrid(x, y)
    inside = np.zeros(xx.shape, dtype=bool)
    # Test each centre in the -180..180, 0..360 and -360..0 conventions, so polygons
    # drawn across the antimeridian (longitudes past 180) work on any grid.
    for shift in (0.0, 360.0, -360.0):
        inside |= shapely.contains_xy(geom, xx + shift, yy)
    inside.setflags(write=False)
    return inside


def rasterise(area: SeaAreaInfo, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Boolean (lat, lon) mask of the cells whose centre lies in ``area`` (cached)."""
    geom = shape(area.geometry)
    return _rasterise(
        shapely.to_wkb(geom),
        np.ascontiguousarray(lon, dtype="f8").tobytes(),
        np.ascontiguousarray(lat, dtype="f8").tobytes(),
    )


def cache_key(area: SeaAreaInfo) -> str:
    return hashlib.sha256(repr(area.geometry).encode()).hexdigest()[:16]
