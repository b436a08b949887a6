"""Selection planning: what a selection would read and return, from metadata alone."""

from __future__ import annotations

from api.deps import CatalogReader, SessionsDep, StoreDep, ViewerDep
from api.routers import Router
from api.schemas import PlanIn, PlanOut, SubsetOut
from catalog.components import check_call
from catalog.planner import plan
from catalog.products import get_product, get_subset, record_subset
from catalog.sea_areas import resolve_area
from catalog.selection import selection_from_json
from oceanmart.db import transaction

router = Router(prefix="/v1", tags=["plans"])


@router.post("/plans", response_model=PlanOut, response_model_by_alias=True)
def create_plan(
    body: PlanIn, _: CatalogReader, sessions: SessionsDep, store: StoreDep, viewer: ViewerDep
) -> PlanOut:
    """Plan a selection of a product's current version: the copy to read, chunks
    touched, output cells and bytes, and the deterministic subset id (recorded, so
    ``GET /v1/plans/{subset_id}`` finds it again). Reads no data."""
    selection = selection_from_json(body.selection)
    with sessions() as session:
        product = get_product(session, body.product, viewer)
        area = resolve_area(session, selection.sea_area) if selection.sea_area else None
    assert product.version is not None
    ds = store.open_version(product.version.store_path, dask=False)
    planned = plan(product, ds, selection, area)
    with transaction(sessions) as session:
        record_subset(session, planned)
    out = planned.as_dict()
    if body.component is not None:
        out["component"] = check_call(body.component.id, body.component.parameters)
    return PlanOut.model_validate(out)


@router.get("/plans/{subset_id}", response_model=SubsetOut)
def subset(subset_id: str, _: CatalogReader, sessions: SessionsDep, viewer: ViewerDep) -> SubsetOut:
    """A planned subset: its product version, canonical selection, copy, cells and bytes."""
    with sessions() as session:
        return SubsetOut.model_validate(get_subset(session, subset_id, viewer))
