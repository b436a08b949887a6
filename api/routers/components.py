"""Processing components: the registry, and runs on entitled data."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from dataclasses import replace
from typing import Any, Literal

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import EntitledDep, LimiterDep, SettingsDep, StoreDep, run_source
from api.routers import Router
from api.work import held, run_cancellable
from catalog import encode
from catalog.components import get_component, list_components
from catalog.compute import ComponentResult, RunPlan, execute, plan_run
from catalog.subset import check_limit
from catalog.work import watched
from oceanmart.errors import InvalidParameter
from pricing.metering import Channel, Delivery

router = Router(prefix="/v1/components", tags=["components"])

Format = Literal["coveragejson", "csv", "geojson", "netcdf"]


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: str = Field(max_length=64, examples=["navy-winds-monthly"])
    parameters: dict[str, Any] = Field(
        description="the component's parameters (its JSON Schema: GET /v1/components/{id})",
        examples=[{"variables": ["UWND"], "point": [140, 20], "datetime": "1985-01-01/1985-12-31"}],
    )
    format: Format | None = Field(
        default=None, description="output format; default CoverageJSON, else CSV"
    )


@router.get("", summary="Every component, with its parameter schema and price hook")
def components() -> dict[str, Any]:
    return {"components": [c.as_dict() for c in list_components()]}


@router.get("/{component_id}", summary="One component")
def component(component_id: str) -> dict[str, Any]:
    return get_component(component_id).as_dict()


@router.post(
    "/{component_id}/runs",
    openapi_extra={"x-oceanmart-data": True},
    responses={200: {"description": "the result in the asked format, streamed"}},
)
async def run(
    request: Request,
    component_id: str,
    body: RunIn,
    gate: EntitledDep,
    settings: SettingsDep,
    store: StoreDep,
    limiter: LimiterDep,
) -> Response:
    """Run a component on the product's current version while the client waits; a run
    that would read more than the per-request limit is a 413 (submit it as a job)."""
    source = run_source(gate.principal, gate.sessions, store, gate.product)

    def work(cancel: threading.Event) -> tuple[RunPlan, ComponentResult, ExitStack]:
        rp = plan_run(component_id, body.parameters, gate.product.id, source)
        check_limit(replace(rp.reads[0].plan, cells=rp.cells, bytes=rp.bytes),
                    settings.max_request_bytes)  # fmt: skip
        stack = ExitStack()
        try:
            if rp.bytes_to_read > settings.heavy_request_bytes:
                stack.enter_context(limiter.heavy(gate.principal.key_id))
            with watched(cancel):
                result = execute(rp, source)
            return rp, result, stack
        except BaseException:
            stack.close()
            raise

    rp, result, stack = await run_cancellable(request, work)
    try:
        available = encode.formats(result)
        fmt = body.format or ("coveragejson" if "coveragejson" in available else "csv")
        if fmt not in available:
            raise InvalidParameter(
                "format", f"a {component_id} result is written as {', '.join(available)}"
            )
        pieces = encode.encode(result, fmt)
        accesses = [
            gate.record(
                Delivery(
                    product_id=r.product.id,
                    version_id=r.plan.version_id,
                    channel=Channel.COMPONENT,
                    selection_hash=r.plan.subset_id,
                    cells=r.plan.cells,
                    bytes=r.plan.bytes,
                )
            )
            for r in rp.reads
        ]
    except BaseException:
        stack.close()
        raise
    headers = {
        # one access per product read (an anomaly reads its climatology too)
        "OceanMart-Access-Id": ", ".join(a.id for a in accesses),
        "OceanMart-Product-Version": gate.version.id,
    }
    if fmt == "netcdf":
        headers["Content-Disposition"] = f'attachment; filename="{component_id}.nc"'
    return StreamingResponse(
        held(pieces, stack), media_type=encode.MEDIA_TYPES[fmt], headers=headers
    )
