"""Named sea areas, islands and countries as GeoJSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Admin, CatalogReader, SessionsDep
from api.routers import Router
from catalog import sea_areas
from oceanmart.db import transaction

router = Router(prefix="/v1/sea-areas", tags=["sea areas"])


class SeaAreaOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name_en: str
    name_zh: str
    kind: str
    source: str
    bbox: tuple[float, float, float, float]
    area_km2: float


class FeatureIn(BaseModel):
    """A GeoJSON Feature; properties carry id, name_en, name_zh and kind."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(pattern="^Feature$")
    properties: dict[str, Any]
    geometry: dict[str, Any]


def _feature(info: sea_areas.SeaAreaInfo) -> dict[str, Any]:
    props = SeaAreaOut.model_validate(info).model_dump()
    return {
        "type": "Feature",
        "id": info.id,
        "properties": props,
        "geometry": info.geometry,
        "bbox": list(info.bbox),
    }


@router.get("", response_model=list[SeaAreaOut])
def list_(
    _: CatalogReader, sessions: SessionsDep, kind: Annotated[str | None, Query()] = None
) -> list[SeaAreaOut]:
    with sessions() as session:
        return [SeaAreaOut.model_validate(a) for a in sea_areas.list_areas(session, kind)]


@router.get("/{area_id}")
def get(area_id: str, _: CatalogReader, sessions: SessionsDep) -> dict[str, Any]:
    """The area as a GeoJSON Feature."""
    with sessions() as session:
        return _feature(sea_areas.get_area(session, area_id))


@router.post("", status_code=status.HTTP_201_CREATED)
def define(body: FeatureIn, _: Admin, sessions: SessionsDep) -> dict[str, Any]:
    """Define (or redraw) a named sea area from a GeoJSON Feature."""
    feature = sea_areas.feature_from_geojson(body.model_dump(), source="api")
    with transaction(sessions) as session:
        (saved,) = sea_areas.save_areas(session, [feature])
    return _feature(saved)
