"""Selection planning: what a selection would read and return, from metadata alone."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CatalogReader, SessionsDep, StoreDep, ViewerDep
from api.schemas import PlanIn, PlanOut
from catalog.planner import plan
from catalog.products import get_product
from catalog.sea_areas import resolve_area
from catalog.selection import selection_from_json

router = APIRouter(prefix="/v1/plans", tags=["plans"])


@router.post("", response_model=PlanOut, response_model_by_alias=True)
def create_plan(
    body: PlanIn, _: CatalogReader, sessions: SessionsDep, store: StoreDep, viewer: ViewerDep
) -> PlanOut:
    """Plan a selection of a product's current version: the copy to read, chunks
    touched, output cells and bytes, and the deterministic subset id. Reads no data."""
    selection = selection_from_json(body.selection)
    with sessions() as session:
        product = get_product(session, body.product, viewer)
        area = resolve_area(session, selection.sea_area) if selection.sea_area else None
    assert product.version is not None
    ds = store.open_version(product.version.store_path, dask=False)
    return PlanOut.model_validate(plan(product, ds, selection, area).as_dict())
