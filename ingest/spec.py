"""Product specs: the small YAML file that makes an ingest reproducible."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from oceanmart.errors import InvalidInput, SourceError


class Theme(StrEnum):
    WATER_ENVIRONMENT = "water-environment"
    GEOGRAPHIC_ENVIRONMENT = "geographic-environment"
    SEA_AREA = "sea-area"
    ISLANDS = "islands"
    ECONOMY = "economy"
    ENVIRONMENTAL_PROTECTION = "environmental-protection"
    EARLY_WARNING = "early-warning"


class Visibility(StrEnum):
    PUBLIC = "public"  # listed, free to read with data:read (research tier arrives later)
    LISTED = "listed"  # listed, data needs an entitlement
    PRIVATE = "private"  # visible only to entitled accounts


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    en: str
    zh: str = ""


class SourceRef(BaseModel):
    """One source file: a path (relative to the spec file) or a corpus file name."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str | None = None
    corpus: str | None = None
    filter_by_keys: dict[str, str | int | float] | None = None  # GRIB: pick one hypercube
    resolution: float | None = None  # vector sources (GSHHS): grid step in degrees

    @model_validator(mode="after")
    def _one_of(self) -> SourceRef:
        if (self.path is None) == (self.corpus is None):
            raise ValueError("a source needs exactly one of `path` or `corpus`")
        return self


class VariableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rename: str | None = None
    standard_name: str | None = None
    units: str | None = None
    long_name: str | None = None
    long_name_zh: str | None = None


class ProductSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
    title: Text
    summary: Text = Text(en="")
    theme: Theme = Theme.WATER_ENVIRONMENT
    license: str = "proprietary"
    provider: str = "unknown"
    visibility: Visibility = Visibility.LISTED
    sources: list[SourceRef] = Field(min_length=1)
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    chunk_target_mb: float = Field(default=2.0, gt=0, le=64)
    base_dir: Path = Field(default=Path(), exclude=True)

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_defaults=False, exclude={"base_dir"})
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def load_spec(path: Path) -> ProductSpec:
    """Read and validate a spec file; errors name the file and the field."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{path}: spec file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SourceError(f"{path}: not a readable YAML spec ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: a spec is a YAML mapping")
    try:
        return ProductSpec.model_validate({**raw, "base_dir": path.parent})
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{path}: {where}: {first['msg']}") from None


def infer_spec(product_id: str, files: list[Path]) -> ProductSpec:
    """A spec for ``oceanmart ingest FILE... --product ID``; printed so it can be saved."""
    try:
        return ProductSpec(
            id=product_id,
            title=Text(en=product_id.replace("-", " ").title()),
            sources=[SourceRef(path=str(f.resolve())) for f in files],
        )
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise InvalidInput(f"--product: {first['msg']}") from None
