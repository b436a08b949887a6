"""Catalog queries: products and their current versions, as value objects."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, select
from sqlalchemy.orm import Session

from catalog.models import Product, ProductVersion, Subset, Variable
from oceanmart.errors import NotFound


@dataclass(frozen=True, slots=True)
class VariableInfo:
    name: str
    standard_name: str
    units: str
    long_name: str
    dims: tuple[str, ...]
    dtype: str


@dataclass(frozen=True, slots=True)
class VersionInfo:
    id: str
    created_at: datetime
    store_path: str
    dims: dict[str, int]
    extent: dict[str, Any]
    stored_bytes: int
    value_count: int
    variables: tuple[VariableInfo, ...]
    chunks: dict[str, Any]  # per copy: chunk grid of each variable, stored bytes, values


@dataclass(frozen=True, slots=True)
class ProductInfo:
    id: str
    title: str
    title_zh: str
    summary: str
    summary_zh: str
    theme: str
    license: str
    provider: str
    visibility: str
    created_at: datetime
    updated_at: datetime
    version: VersionInfo | None


# A published version never changes (its id is a hash of its content), so its catalog
# entry is read once per database: every data request looks its version up, and the
# version row, its variables and their JSON cost ~1 ms a time. Keyed by engine, so two
# databases in one process (the tests) never share entries; a version that is gone
# (deleted rows) is still checked by the product row that points at it.
_VERSIONS: weakref.WeakKeyDictionary[Engine, dict[str, VersionInfo]] = weakref.WeakKeyDictionary()
_VERSIONS_MAX = 512
_VERSIONS_LOCK = threading.Lock()


def _version(session: Session, version_id: str | None) -> VersionInfo | None:
    if version_id is None:
        return None
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with _VERSIONS_LOCK:
        cached = _VERSIONS.setdefault(engine, {}).get(version_id)
    if cached is not None:
        return cached
    info = _read_version(session, version_id)
    if info is not None:
        with _VERSIONS_LOCK:
            known = _VERSIONS.setdefault(engine, {})
            if len(known) >= _VERSIONS_MAX:
                known.clear()
            known[version_id] = info
    return info


def _read_version(session: Session, version_id: str) -> VersionInfo | None:
    v = session.get(ProductVersion, version_id)
    if v is None:
        return None
    variables = session.scalars(
        select(Variable).where(Variable.version_id == v.id).order_by(Variable.name)
    )
    return VersionInfo(
        id=v.id,
        created_at=v.created_at,
        store_path=v.store_path,
        dims=dict(v.dims),
        extent=dict(v.extent),
        stored_bytes=v.stored_bytes,
        value_count=v.value_count,
        variables=tuple(
            VariableInfo(x.name, x.standard_name, x.units, x.long_name, tuple(x.dims), x.dtype)
            for x in variables
        ),
        chunks=dict(v.chunks),
    )


def _info(session: Session, p: Product) -> ProductInfo:
    return ProductInfo(
        id=p.id,
        title=p.title,
        title_zh=p.title_zh,
        summary=p.summary,
        summary_zh=p.summary_zh,
        theme=p.theme,
        license=p.license,
        provider=p.provider,
        visibility=p.visibility,
        created_at=p.created_at,
        updated_at=p.updated_at,
        version=_version(session, p.current_version_id),
    )


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at the catalog. Everyone sees public and listed products; a private
    product is seen by operators and by the accounts entitled to it (``private``)."""

    admin: bool = False
    private: frozenset[str] = frozenset()

    def sees(self, product_id: str, visibility: str) -> bool:
        return visibility != "private" or self.admin or product_id in self.private


ANONYMOUS = Viewer()
OPERATOR = Viewer(admin=True)


def list_products(session: Session, viewer: Viewer = OPERATOR) -> list[ProductInfo]:
    """Published products (those with a current version) ``viewer`` may see, by id."""
    rows = session.scalars(
        select(Product).where(Product.current_version_id.is_not(None)).order_by(Product.id)
    )
    return [_info(session, p) for p in rows if viewer.sees(p.id, p.visibility)]


_PRODUCT = select(cast(Table, Product.__table__)).where(
    cast(Table, Product.__table__).c.id == bindparam("product_id")
)


def get_product(
    session: Session,
    product_id: str,
    viewer: Viewer = OPERATOR,
    version_id: str | None = None,
) -> ProductInfo:
    """A published product; one ``viewer`` may not see is as missing as an unknown one.

    With ``version_id``, the product as of that (immutable) version instead of its
    current one: what a saved subset or a pinned Zarr URL reads.
    """
    # A Core read of the row (the ORM's identity map and object loading cost more than
    # the query on every data request); a session holding the product with unflushed
    # changes (tests, the CLI) still gets them through the ORM.
    p: Any = None
    if not (session.dirty or session.new or session.deleted):
        p = session.execute(_PRODUCT, {"product_id": product_id}).first()
    else:
        p = session.get(Product, product_id)
    if p is None or p.current_version_id is None or not viewer.sees(p.id, p.visibility):
        raise NotFound(f"no product {product_id!r}", extensions={"product": product_id})
    info = _info(session, p)
    if version_id is None or version_id == p.current_version_id:
        return info
    pinned = session.get(ProductVersion, version_id)
    if pinned is None or pinned.product_id != p.id:
        raise NotFound(
            f"product {product_id!r} has no version {version_id!r}",
            extensions={"product": product_id, "version": version_id},
        )
    return replace(info, version=_version(session, version_id))


def list_versions(session: Session, product_id: str) -> list[VersionInfo]:
    """Every published version of a product, newest first."""
    ids = session.scalars(
        select(ProductVersion.id)
        .where(ProductVersion.product_id == product_id)
        .order_by(ProductVersion.created_at.desc(), ProductVersion.id)
    )
    return [v for v in (_version(session, i) for i in ids) if v is not None]


def record_subset(session: Session, plan: Any) -> None:
    """Record a planned subset once (its id is deterministic); ``plan``: a planner Plan."""
    if session.get(Subset, plan.subset_id) is None:
        session.add(
            Subset(
                id=plan.subset_id,
                product_id=plan.product_id,
                version_id=plan.version_id,
                selection=plan.selection,
                copy=plan.copy,
                cells=plan.cells,
                bytes=plan.bytes,
            )
        )
        session.flush()


@dataclass(frozen=True, slots=True)
class SubsetInfo:
    id: str
    product_id: str
    version_id: str
    selection: dict[str, Any]
    copy: str
    cells: int
    bytes: int
    created_at: datetime


def get_subset(session: Session, subset_id: str, viewer: Viewer = OPERATOR) -> SubsetInfo:
    row = session.get(Subset, subset_id)
    product = session.get(Product, row.product_id) if row is not None else None
    if row is None or product is None or not viewer.sees(product.id, product.visibility):
        raise NotFound(f"no subset {subset_id!r}", extensions={"subset": subset_id})
    return SubsetInfo(
        row.id, row.product_id, row.version_id, dict(row.selection), row.copy, row.cells,
        row.bytes, row.created_at,
    )  # fmt: skip
