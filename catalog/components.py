"""Processing components: server-side capabilities run on entitled data.

Each component is declared here with typed parameters (a pydantic model, published as
JSON Schema), the output kinds it produces, and its price hook (what the pricing module
multiplies: planned cells, points or a fixed fee, and a factor for the compute).
``catalog.compute`` plans and runs them and ``catalog.encode`` writes their results; the
catalog lists them at ``/v1/components`` and the STAC landing page links there (OGC API
Processes' ``processes`` relation).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oceanmart.errors import InvalidParameter, NotFound

LonLat = Annotated[list[float], Field(min_length=2, max_length=2, description="[lon, lat]")]
Variables = Annotated[list[str], Field(min_length=1, description="variable names")]
DepthRange = Annotated[
    list[float], Field(min_length=2, max_length=2, description="[min, max] metres")
]
Percentile = Annotated[float, Field(ge=0, le=100)]


class Output(StrEnum):
    """Result formats (``catalog.encode`` writes all but Zarr, which the HTTP layer serves
    from the result dataset)."""

    NETCDF = "netcdf"
    ZARR = "zarr"
    CSV = "csv"
    COVERAGEJSON = "coveragejson"
    GEOJSON = "geojson"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Area(_Params):
    """Where: one of a box, a polygon or a named sea area."""

    bbox: Annotated[list[float], Field(min_length=4, max_length=4)] | None = None
    polygon: dict[str, Any] | str | None = Field(default=None, description="GeoJSON or WKT")
    sea_area: str | None = None


class PointSeries(_Params):
    variables: Variables
    point: LonLat
    datetime: str | None = Field(default=None, description="start/end, ISO 8601")
    depth: DepthRange | None = None
    method: Literal["nearest", "linear"] = "nearest"


class VerticalProfile(_Params):
    variables: Variables = Field(description="variables with a depth axis")
    point: LonLat
    datetime: str | None = Field(default=None, description="start/end or an instant")
    depth: DepthRange | None = None
    method: Literal["nearest", "linear"] = "nearest"


class AreaStatistics(_Params):
    variables: Variables
    area: Area
    datetime: str | None = None
    depth: DepthRange | None = None
    statistics: list[Literal["mean", "min", "max", "std", "count", "sum"]] = ["mean"]
    percentiles: list[Percentile] = Field(
        default=[], max_length=20, description="e.g. [10, 50, 90]: the nearest-rank percentiles"
    )
    weighted: bool = Field(
        default=True, description="weight cells by their area (cos latitude) for mean, std "
        "and percentiles",
    )  # fmt: skip
    group_by: Literal["none", "month", "season", "year"] = Field(
        default="none",
        description="none: per time step; otherwise over every value in each calendar "
        "month, season (DJF, MAM, JJA, SON) or year",
    )


class TemporalAggregation(_Params):
    variables: Variables
    area: Area
    period: Literal["month", "season", "year"] = Field(
        description="calendar months, seasons (DJF, MAM, JJA, SON) or years"
    )
    statistic: Literal["mean", "min", "max", "sum", "std"] = "mean"
    datetime: str | None = None
    depth: DepthRange | None = None


class ClimatologyRef(_Params):
    product: str = Field(description="a monthly climatology product (12 time steps)")
    variables: dict[str, str] = Field(
        default={}, description="variable -> the climatology's variable; default the same name"
    )


class ClimatologyAnomaly(_Params):
    variables: Variables
    area: Area
    datetime: str = Field(description="the period to compare, start/end")
    baseline: str | None = Field(
        default=None, description="a reference period of the same product, start/end"
    )
    climatology: ClimatologyRef | None = Field(
        default=None, description="or a separate monthly climatology product"
    )
    depth: DepthRange | None = None


class ThresholdAlert(_Params):
    variable: str | Annotated[list[str], Field(min_length=2, max_length=2)] = Field(
        description="a variable, or the two components [u, v] of a vector whose magnitude "
        "is tested (wind speed from UWND and VWND)"
    )
    area: Area
    datetime: str | None = None
    depth: DepthRange | None = Field(
        default=None, description="one depth level, for variables with a depth axis"
    )
    operator: Literal["gt", "ge", "lt", "le"]
    threshold: float = Field(description="in the variable's units (Beaufort 7: 13.9 m s-1)")
    min_cells: int = Field(default=1, ge=1, description="alert when at least this many cells")


class RouteSampling(_Params):
    variables: Variables
    route: list[dict[str, Any]] = Field(
        min_length=1, max_length=10_000, description='[{"lon", "lat", "time"}, ...]'
    )
    method: Literal["nearest", "linear"] = "nearest"
    depth: DepthRange | None = None


class Regrid(_Params):
    variables: Variables
    area: Area
    resolution: float = Field(gt=0, le=10, description="target grid step, degrees")
    method: Literal["nearest", "bilinear", "conservative"] = "bilinear"
    datetime: str | None = None
    depth: DepthRange | None = None


@dataclass(frozen=True, slots=True)
class PriceHook:
    """What a component's price is proportional to: planned ``cells`` (the selection it
    reads), requested ``points``, or a ``fixed`` fee; ``factor`` weighs the compute."""

    basis: Literal["cells", "points", "fixed"]
    factor: float


@dataclass(frozen=True, slots=True)
class Component:
    id: str
    title: str
    title_zh: str
    description: str
    parameters: type[BaseModel]
    outputs: tuple[Output, ...]
    price: PriceHook
    version: str = "1.0.0"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "title_zh": self.title_zh,
            "description": self.description,
            "parameters": self.parameters.model_json_schema(),
            "outputs": [o.value for o in self.outputs],
            "price": {"basis": self.price.basis, "factor": self.price.factor},
        }

    def validate(self, params: dict[str, Any]) -> BaseModel:
        return self.parameters.model_validate(params)


_GRID = (Output.NETCDF, Output.ZARR, Output.COVERAGEJSON, Output.CSV)
_POINT = (Output.COVERAGEJSON, Output.CSV, Output.NETCDF)

REGISTRY: dict[str, Component] = {
    c.id: c
    for c in (
        Component(
            "point-series",
            "Time series at a point",
            "定点时间序列",
            "Values of the chosen variables at one position over a time range (nearest "
            "cell or bilinear), read from the series copy.",
            PointSeries,
            _POINT,
            PriceHook("cells", 1.0),
        ),
        Component(
            "vertical-profile",
            "Vertical profile at a point",
            "定点垂直剖面",
            "Values over depth at one position (nearest cell or bilinear), for each time "
            "step of the range.",
            VerticalProfile,
            _POINT,
            PriceHook("cells", 1.0),
        ),
        Component(
            "area-statistics",
            "Area statistics",
            "区域统计",
            "Mean, extremes, spread, counts and percentiles over a box, polygon or sea "
            "area, per time step or over each month, season or year; cells weighted by "
            "their area.",
            AreaStatistics,
            (Output.CSV, Output.COVERAGEJSON, Output.NETCDF),
            PriceHook("cells", 1.5),
        ),
        Component(
            "temporal-aggregation",
            "Temporal aggregation",
            "时间聚合",
            "Monthly, seasonal or annual mean (or min, max, sum, std) of every cell of a "
            "box, polygon or sea area.",
            TemporalAggregation,
            _GRID,
            PriceHook("cells", 1.5),
        ),
        Component(
            "climatology-anomaly",
            "Anomaly against a climatology",
            "气候态距平",
            "The difference between a period and a monthly climatology: the monthly means "
            "of a baseline period of the same product, or a separate monthly climatology "
            "product interpolated bilinearly onto the product's grid.",
            ClimatologyAnomaly,
            _GRID,
            PriceHook("cells", 2.0),
        ),
        Component(
            "threshold-alert",
            "Threshold alert",
            "阈值预警",
            "Time steps and cells where a variable (or the magnitude of a vector, such as "
            "wind speed from its components) crosses a threshold in an area.",
            ThresholdAlert,
            (Output.GEOJSON, Output.CSV, Output.NETCDF),
            PriceHook("cells", 1.2),
        ),
        Component(
            "route-sampling",
            "Sampling along a route",
            "航线采样",
            "Values along a ship track: each position at its own time.",
            RouteSampling,
            (Output.GEOJSON, Output.COVERAGEJSON, Output.CSV, Output.NETCDF),
            PriceHook("points", 1.0),
        ),
        Component(
            "regrid",
            "Regrid",
            "重网格化",
            "The selection on a regular grid of another resolution, aligned on whole "
            "multiples of the step: nearest cell, bilinear, or first-order conservative.",
            Regrid,
            _GRID,
            PriceHook("cells", 3.0),
        ),
    )
}


def list_components() -> list[Component]:
    return list(REGISTRY.values())


def get_component(component_id: str) -> Component:
    try:
        return REGISTRY[component_id]
    except KeyError:
        raise NotFound(
            f"no component {component_id!r}", extensions={"component": component_id}
        ) from None


def parse_call(component_id: str, parameters: dict[str, Any]) -> tuple[Component, BaseModel]:
    """The component and its typed parameters; a bad call is a 400 naming the parameter."""
    component = REGISTRY.get(component_id)
    if component is None:
        known = ", ".join(REGISTRY)
        raise InvalidParameter("component", f"no component {component_id!r} (known: {known})")
    try:
        return component, component.validate(parameters)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidParameter(f"component.parameters.{where}", err["msg"]) from None


def check_call(component_id: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Check a component call; a bad one is a 400 naming the parameter at fault."""
    component, checked = parse_call(component_id, parameters)
    return {
        "id": component.id,
        "parameters": checked.model_dump(mode="json"),
        "price": {"basis": component.price.basis, "factor": component.price.factor},
    }
