"""Catalog tables: a product has immutable, content-hashed versions with variables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from oceanmart.db import Base, UTCDateTime, utcnow


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    title_zh: Mapped[str] = mapped_column(String(200), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    summary_zh: Mapped[str] = mapped_column(Text, default="")
    theme: Mapped[str] = mapped_column(String(32))
    license: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(200))
    visibility: Mapped[str] = mapped_column(String(16), default="listed")
    current_version_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProductVersion(Base):
    __tablename__ = "product_versions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # content hash
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    store_path: Mapped[str] = mapped_column(String(400))  # relative to the data root
    dims: Mapped[dict[str, int]] = mapped_column(JSON)
    extent: Mapped[dict[str, Any]] = mapped_column(JSON)
    chunks: Mapped[dict[str, Any]] = mapped_column(JSON)
    stored_bytes: Mapped[int] = mapped_column(BigInteger)
    value_count: Mapped[int] = mapped_column(BigInteger)
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


class Variable(Base):
    __tablename__ = "variables"
    __table_args__ = (UniqueConstraint("version_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("product_versions.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    standard_name: Mapped[str] = mapped_column(String(200), default="")
    units: Mapped[str] = mapped_column(String(64), default="")
    long_name: Mapped[str] = mapped_column(String(200), default="")
    dims: Mapped[list[str]] = mapped_column(JSON)
    dtype: Mapped[str] = mapped_column(String(16))


class Subset(Base):
    """A planned selection of one product version; its id is a hash of the canonical
    selection and the version (``catalog.selection.subset_id``), so it is recorded once."""

    __tablename__ = "subsets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("product_versions.id"))
    selection: Mapped[dict[str, Any]] = mapped_column(JSON)
    copy: Mapped[str] = mapped_column(String(8))
    cells: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
