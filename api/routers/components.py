"""The processing components registry (their runs arrive with the data-access issue)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from catalog.components import get_component, list_components

router = APIRouter(prefix="/v1/components", tags=["components"])


@router.get("", summary="Every component, with its parameter schema and price hook")
def components() -> dict[str, Any]:
    return {"components": [c.as_dict() for c in list_components()]}


@router.get("/{component_id}", summary="One component")
def component(component_id: str) -> dict[str, Any]:
    return get_component(component_id).as_dict()
