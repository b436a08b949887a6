"""Request and response models of the public API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from oceanmart.accounts import AccountKind, Scope


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    kind: AccountKind


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    kind: AccountKind
    created_at: datetime


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str
    scopes: list[Scope] = Field(min_length=1)
    label: str = Field(default="", max_length=100)
    expires_at: AwareDatetime | None = None


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    account: str
    scopes: list[str]
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself. Shown once; only its hash is stored.")


class WhoAmI(BaseModel):
    account: str
    kind: AccountKind
    key_id: str
    scopes: list[str]


class EntitlementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str
    product: str
    expires_at: AwareDatetime | None = None


class EntitlementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    account: str
    product: str
    kind: str
    granted_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class VariableOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str
    standard_name: str
    units: str
    long_name: str
    dims: list[str]
    dtype: str


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    created_at: datetime
    dims: dict[str, int]
    extent: dict[str, Any]
    stored_bytes: int
    value_count: int
    variables: list[VariableOut]


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
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
    version: VersionOut | None


class ProductList(BaseModel):
    products: list[ProductOut]


class Health(BaseModel):
    status: str
    version: str
    database: str


class ComponentCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(examples=["area-statistics"])
    parameters: dict[str, Any] = Field(default_factory=dict)


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: str = Field(max_length=64, examples=["levitus-climatology"])
    selection: dict[str, Any] = Field(
        default_factory=dict,
        description="bbox | polygon | sea_area | point | points | route; datetime | times; "
        "depth; variables; method; stride (see the README)",
        examples=[{"bbox": [-10, -20, 10, 20], "depth": [0, 100], "variables": ["TEMP"]}],
    )
    component: ComponentCall | None = Field(
        default=None, description="a processing component to run on the selection"
    )


class CopyCostOut(BaseModel):
    chunks: int
    bytes: int


class PlanOut(BaseModel):
    product: str
    version: str
    subset_id: str = Field(description="Deterministic id of this selection of this version")
    selection: dict[str, Any] = Field(description="The selection in canonical form")
    copy_: str = Field(alias="copy", description="The copy the read will use: map or series")
    cells: int = Field(description="Output values, all variables")
    bytes: int = Field(description="Output bytes (values only, uncompressed)")
    chunks: int = Field(description="Chunks touched in the chosen copy")
    bytes_to_read: int = Field(description="Decoded bytes of those chunks")
    copies: dict[str, CopyCostOut]
    variables: list[str]
    shape: dict[str, int]
    component: dict[str, Any] | None = Field(
        default=None, description="the component, its checked parameters and price hook"
    )


class SubsetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)
    id: str
    product_id: str
    version_id: str
    selection: dict[str, Any]
    copy_: str = Field(alias="copy", validation_alias="copy")
    cells: int
    bytes: int
    created_at: datetime


class AnchorOut(BaseModel):
    status: str = Field(description="anchored, or skipped (a larger size was anchored first)")
    chain_id: int
    contract: str
    transaction: str | None
    block_number: int | None


class CheckpointOut(BaseModel):
    size: int
    root: str = Field(description="SHA-256 root hash, base64 (as in the note)")
    note: str = Field(description="The C2SP signed note: origin, size, root, signature")
    created_at: datetime
    anchor: AnchorOut | None


class ConsistencyOut(BaseModel):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str] = Field(description="RFC 9162 consistency proof, base64 hashes")


class LedgerInfo(BaseModel):
    origin: str
    verifier_key: str = Field(description="Ed25519 signed-note key of the checkpoints")
    size: int
    chain_id: int | None
    contract: str | None
    rpc_url: str | None = Field(description="JSON-RPC URL of the anchoring chain")


class RecordOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    v: int
    kind: str
    time: str
    account: str | None


class ReceiptAnchorOut(BaseModel):
    chain_id: int
    contract: str
    transaction: str | None
    block_number: int | None
    rpc_url: str | None


class ReceiptOut(BaseModel):
    """Everything needed to check one access without the operator's database:
    ``oceanmart ledger verify receipt.json`` does it."""

    format: str
    access_id: str
    record: RecordOut
    leaf: str = Field(description="The leaf bytes (canonical JSON), base64")
    leaf_index: int
    tree_size: int
    inclusion_proof: list[str]
    checkpoint: str
    verifier_key: str
    anchor: ReceiptAnchorOut


# NetCDF outputs: uncompressed unless asked (catalog.subset.write_netcdf says why).
Compression = Annotated[
    int, Query(ge=0, le=9, description="NetCDF deflate level, 0 (none, the default) to 9")
]
