"""The catalog as STAC: products are Collections (datacube extension), versions are Items.

Built with pystac objects and served by ``api/routers/stac.py``. Choices:

- An Item is a published version of a product: its geometry is the product's grid box
  (cell centres), its time the product's time coverage. Item search returns current
  versions (one per product), so a bbox/datetime search answers "which products have
  data here and then"; ``/collections/{id}/items`` lists every version.
- A product without a time axis (bathymetry, masks) is dated by its version's
  publication time, as STAC asks for some date; a time search does not match it by
  its data.
- Free text (``q``): comma-separated terms, any of which may match (OR), each a
  case-insensitive substring of the id, the zh/en title and summary, the theme, or a
  variable's name, standard name or long name. Substrings, not words, so Chinese
  needs no tokeniser.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pystac
import shapely
from pystac.extensions.datacube import (
    DatacubeExtension,
    Dimension,
    DimensionType,
    HorizontalSpatialDimensionAxis,
    Variable,
    VariableType,
)
from shapely.geometry import box, shape

from catalog.products import ProductInfo, VersionInfo
from catalog.selection import BBox, TimeRange

STAC_VERSION = pystac.get_stac_version()
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0-rc.1/item-search#free-text",
    "https://api.stacspec.org/v1.0.0-rc.1/collection-search",
    "https://api.stacspec.org/v1.0.0-rc.1/collection-search#free-text",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
]
ZARR = "application/vnd+zarr"
GEOJSON = "application/geo+json"
THEMES = {
    "water-environment": "水环境",
    "geographic-environment": "地理环境",
    "sea-area": "海域",
    "islands": "海岛",
    "economy": "经济",
    "environmental-protection": "环境保护",
    "early-warning": "预警",
}


def _instant(text: str) -> datetime:
    """A time from the catalog's extent (numpy or cftime text) as an aware datetime."""
    return datetime.fromisoformat(text[:19].replace(" ", "T")).replace(tzinfo=UTC)


def time_span(version: VersionInfo) -> tuple[datetime, datetime | None]:
    t = version.extent.get("time")
    if t:
        return _instant(t[0]), _instant(t[1])
    return version.created_at.astimezone(UTC), None


def grid_box(version: VersionInfo) -> tuple[float, float, float, float]:
    lon = version.extent.get("longitude", [-180.0, 180.0])
    lat = version.extent.get("latitude", [-90.0, 90.0])
    return float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1])


def _step(version: VersionInfo, dim: str) -> float | None:
    lo, hi = version.extent[dim]
    n = version.dims.get(dim, 1)
    return round((hi - lo) / (n - 1), 9) if n > 1 else None


def _dimensions(version: VersionInfo) -> dict[str, Dimension]:
    out: dict[str, Dimension] = {}
    for dim, n in version.dims.items():
        ext = version.extent.get(dim)
        props: dict[str, Any] = {}
        if dim in ("longitude", "latitude"):
            axis = (
                HorizontalSpatialDimensionAxis.X
                if dim == "longitude"
                else HorizontalSpatialDimensionAxis.Y
            )
            props = {
                "type": DimensionType.SPATIAL,
                "axis": axis,
                "extent": ext,
                "reference_system": 4326,
            }
            step = _step(version, dim)
            if step is not None:
                props["step"] = step
        elif dim == "depth":
            props = {"type": DimensionType.SPATIAL, "axis": "z", "extent": ext, "unit": "m"}
        elif dim == "time":
            start, end = time_span(version)
            props = {
                "type": DimensionType.TEMPORAL,
                "extent": [
                    start.isoformat().replace("+00:00", "Z"),
                    end and end.isoformat().replace("+00:00", "Z"),
                ],
            }
        elif ext is not None:
            props = {"type": "other", "extent": ext}
        else:
            props = {"type": "other", "extent": [0, n - 1], "description": f"{n} positions"}
        out[dim] = Dimension(props)
    return out


def _variables(version: VersionInfo) -> dict[str, Variable]:
    return {
        v.name: Variable(
            {
                "dimensions": list(v.dims),
                "type": VariableType.DATA,
                "description": v.long_name or v.name,
                "unit": v.units or None,
                "oceanmart:standard_name": v.standard_name or None,
            }
        )
        for v in version.variables
    }


def _link(rel: str, href: str, media: str = "application/json", **extra: Any) -> pystac.Link:
    return pystac.Link(rel, href, media_type=media, extra_fields=extra or None)


def _as_dict(
    obj: pystac.STACObject, self_href: str, media: str = "application/json"
) -> dict[str, Any]:
    """``obj`` as JSON with our absolute links kept as they are (pystac would drop the
    self link or rewrite hrefs relative to a catalog root on disk)."""
    out = obj.to_dict(include_self_link=False, transform_hrefs=False)
    out["links"].insert(0, {"rel": "self", "href": self_href, "type": media})
    return out


def collection(product: ProductInfo, base: str) -> dict[str, Any]:
    """The STAC Collection of a product (``base``: the API root URL, no trailing slash)."""
    version = product.version
    assert version is not None
    start, end = time_span(version)
    c = pystac.Collection(
        id=product.id,
        title=product.title,
        description=product.summary or product.title,
        extent=pystac.Extent(
            pystac.SpatialExtent([list(grid_box(version))]),
            pystac.TemporalExtent([[start, end]]),
        ),
        license="other",
        keywords=[
            product.theme,
            THEMES.get(product.theme, ""),
            *(v.name for v in version.variables),
        ],
        providers=[pystac.Provider(product.provider, roles=[pystac.ProviderRole.PRODUCER])],
        extra_fields={
            "title:zh": product.title_zh,
            "description:zh": product.summary_zh,
            "oceanmart:theme": product.theme,
            "oceanmart:license": product.license,
            "oceanmart:visibility": product.visibility,
            "oceanmart:version": version.id,
        },
    )
    cube = DatacubeExtension.ext(c, add_if_missing=True)
    cube.apply(dimensions=_dimensions(version), variables=_variables(version))
    c.add_asset(
        "zarr",
        pystac.Asset(
            f"{base}/zarr/products/{product.id}",
            title="Zarr v3 store of the current version (map-chunked)",
            media_type=ZARR,
            roles=["data"],
            extra_fields={"xarray:open_kwargs": {"engine": "zarr", "consolidated": True}},
        ),
    )
    c.clear_links()
    c.add_links(
        [
            _link("root", f"{base}/stac"),
            _link("parent", f"{base}/stac"),
            _link("items", f"{base}/stac/collections/{product.id}/items", GEOJSON),
            _link("license", f"{base}/v1/products/{product.id}", title=product.license),
        ]
    )
    return _as_dict(c, f"{base}/stac/collections/{product.id}")


def item(product: ProductInfo, version: VersionInfo, base: str) -> dict[str, Any]:
    start, end = time_span(version)
    w, s, e, n = grid_box(version)
    props: dict[str, Any] = {
        "title": f"{product.title} @ {version.id}",
        "created": version.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "oceanmart:version": version.id,
        "oceanmart:current": product.version is not None and product.version.id == version.id,
        "oceanmart:theme": product.theme,
    }
    if end is not None:
        props["start_datetime"] = start.isoformat().replace("+00:00", "Z")
        props["end_datetime"] = end.isoformat().replace("+00:00", "Z")
    i = pystac.Item(
        id=version.id,
        geometry=box(w, s, e, n).__geo_interface__,
        bbox=[w, s, e, n],
        datetime=None if end is not None else start,
        properties=props,
        collection=product.id,
    )
    i.add_asset(
        "zarr",
        pystac.Asset(
            f"{base}/zarr/products/{product.id}",
            title="Zarr v3 store (map-chunked)",
            media_type=ZARR,
            roles=["data"],
        ),
    )
    i.clear_links()
    i.add_links(
        [
            _link("root", f"{base}/stac"),
            _link("parent", f"{base}/stac/collections/{product.id}"),
            _link("collection", f"{base}/stac/collections/{product.id}"),
        ]
    )
    return _as_dict(i, f"{base}/stac/collections/{product.id}/items/{version.id}", GEOJSON)


@dataclass(frozen=True, slots=True)
class Query:
    """An item or collection search (all fields optional; all given ones must match)."""

    bbox: BBox | None = None
    intersects: dict[str, Any] | None = None
    time: TimeRange | None = None
    text: tuple[str, ...] = ()
    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    themes: tuple[str, ...] | None = None
    variables: tuple[str, ...] | None = None


def _text_of(product: ProductInfo) -> str:
    version = product.version
    parts = [product.id, product.title, product.title_zh, product.summary, product.summary_zh]
    parts += [product.theme, THEMES.get(product.theme, "")]
    if version is not None:
        for v in version.variables:
            parts += [v.name, v.standard_name, v.standard_name.replace("_", " "), v.long_name]
    return "\n".join(parts).casefold()


def _boxes(b: BBox) -> list[Any]:
    if b.west <= b.east:
        return [box(b.west, b.south, b.east, b.north)]
    return [box(b.west, b.south, 180.0, b.north), box(-180.0, b.south, b.east, b.north)]


def matches(product: ProductInfo, version: VersionInfo, q: Query) -> bool:
    if q.collections is not None and product.id not in q.collections:
        return False
    if q.ids is not None and version.id not in q.ids:
        return False
    if q.themes is not None and product.theme not in q.themes:
        return False
    if q.variables is not None:
        names = {v.name.casefold() for v in version.variables}
        names |= {v.standard_name.casefold() for v in version.variables if v.standard_name}
        if not any(v.casefold() in names for v in q.variables):
            return False
    if q.text:
        haystack = _text_of(product)
        if not any(t.casefold() in haystack for t in q.text):
            return False
    footprint = box(*grid_box(version))
    if q.bbox is not None and not any(footprint.intersects(b) for b in _boxes(q.bbox)):
        return False
    if q.intersects is not None and not footprint.intersects(shape(q.intersects)):
        return False
    if q.time is not None:
        start, end = time_span(version)
        end = end or start
        lo = q.time.start.replace(tzinfo=UTC) if q.time.start else None
        hi = q.time.end.replace(tzinfo=UTC) if q.time.end else None
        if (hi is not None and start > hi) or (lo is not None and end < lo):
            return False
    return True


def page(
    items: list[dict[str, Any]], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of results and the offset of the next page (None on the last)."""
    chunk = items[offset : offset + limit]
    nxt = offset + limit if offset + limit < len(items) else None
    return chunk, nxt


def check_geometry(doc: object) -> dict[str, Any]:
    """A GeoJSON geometry for ``intersects``; raises ValueError with the reason."""
    if not isinstance(doc, dict) or "type" not in doc:
        raise ValueError("expected a GeoJSON geometry object")
    geom = shape(doc)
    if geom.is_empty or not shapely.is_valid(geom):
        raise ValueError(f"invalid geometry: {shapely.is_valid_reason(geom)}")
    return dict(doc)


def landing(base: str, collections: Iterable[ProductInfo]) -> dict[str, Any]:
    cat = pystac.Catalog(
        id="oceanmart",
        title="OceanMart",
        description="Ocean, weather and sea-area data products as analysis-ready Zarr.",
        extra_fields={"conformsTo": CONFORMANCE, "type": "Catalog"},
    )
    cat.clear_links()
    links = [
        _link("root", f"{base}/stac"),
        _link("conformance", f"{base}/stac/conformance"),
        _link("data", f"{base}/stac/collections"),
        _link("search", f"{base}/stac/search", GEOJSON, method="GET"),
        _link("search", f"{base}/stac/search", GEOJSON, method="POST"),
        _link(
            "service-desc", f"{base}/openapi.json", "application/vnd.oai.openapi+json;version=3.0"
        ),
        _link("service-doc", f"{base}/docs", "text/html"),
        _link(
            "http://www.opengis.net/def/rel/ogc/1.0/processes",
            f"{base}/v1/components",
            title="Processing components",
        ),
    ]
    links += [_link("child", f"{base}/stac/collections/{p.id}", title=p.title) for p in collections]
    cat.add_links(links)
    out = _as_dict(cat, f"{base}/stac")
    out["conformsTo"] = CONFORMANCE
    return out


def limit_value(raw: int | None, default: int = 10, maximum: int = 1000) -> int:
    if raw is None:
        return default
    return max(1, min(int(raw), maximum))
