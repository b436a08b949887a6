"""The one Settings object, read from ``OCEANMART_*`` environment variables and ``.env``.

Built once at start-up (CLI command or app factory) and passed in; nothing else in the
code base reads the environment. Unset values mean the embedded default: SQLite and
Zarr under ``./var``, dask threads in process.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values people paste from templates. Accepted only by the demo, which is local by design.
_PLACEHOLDER = re.compile(
    r"^(|changeme|change-?this|change_me|secret|password|placeholder|todo|example|test|"
    r"(sk|rk|pk)_(test|live)_(x+|placeholder|changeme|\.\.\.)|whsec_(x+|placeholder|\.\.\.)|x+|\.\.\.)$",
    re.IGNORECASE,
)


def is_placeholder(value: str) -> bool:
    """True for an empty or template value such as ``changeme`` or ``sk_test_xxx``."""
    return bool(_PLACEHOLDER.match(value.strip()))


class Settings(BaseSettings):
    """Runtime configuration; see the README for every variable."""

    model_config = SettingsConfigDict(
        env_prefix="OCEANMART_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    var_dir: Path = Field(default=Path("var"), description="Folder of the embedded default.")
    database_url: str = Field(default="", description="SQLAlchemy URL; default SQLite in var/.")
    data_url: str = Field(
        default="", description="Where Zarr products live: a folder or an fsspec URL."
    )
    data_storage_options: SecretStr | None = Field(
        default=None, description="JSON object of fsspec storage options (credentials)."
    )
    corpus_dir: Path = Field(default=Path(".cache/corpus"), description="Corpus download cache.")
    chain_url: str | None = None
    stripe_api_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = Field(
        default=None, description="Another Stripe API address (a local Stripe-speaking server)."
    )
    public_url: str | None = Field(
        default=None,
        description="The URL buyers reach this server at (Stripe return pages); "
        "default http://HOST:PORT.",
    )
    operator_key: SecretStr | None = Field(
        default=None,
        description="Hex secp256k1 private key of the operator: signs quotes (EIP-712), "
        "ledger checkpoints and anchor transactions. Unset: a key kept in var/.",
    )
    ledger_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key that pseudonymises account ids in the ledger. Unset: kept in var/.",
    )
    ledger_origin: str = Field(
        default="oceanmart.local/ledger",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,99}$",
        description="Origin line of the ledger's checkpoints (C2SP) and its note key name.",
    )
    ledger_checkpoint_every: int = Field(
        default=1000, gt=0, description="Sign a checkpoint after this many new records..."
    )
    ledger_checkpoint_seconds: float = Field(
        default=5.0, gt=0, description="...or this long after the last one, if anything is new."
    )
    ledger_background: bool = Field(
        default=True, description="The server integrates, checkpoints and anchors in a thread."
    )
    ledger_poll_seconds: float = Field(
        default=0.5, gt=0, description="How often that thread looks for new records."
    )
    dask_scheduler: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    demo: bool = False
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_request_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    rate_limit_per_s: float = Field(
        default=100.0, gt=0, description="Requests per second per key, sustained."
    )
    rate_limit_burst: int = Field(default=400, gt=0, description="Requests per key at once.")
    heavy_request_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="A request reading more than this many bytes counts as heavy.",
    )
    max_heavy_per_key: int = Field(
        default=2, gt=0, description="Heavy requests one key may run at the same time."
    )
    job_workers: int = Field(default=2, gt=0, description="Jobs run at the same time.")
    max_job_bytes: int = Field(
        default=8 * 1024**3, gt=0, description="The output size limit of one job."
    )
    metering_durable: bool = Field(
        default=False,
        description="Data deliveries' access records (and their ledger leaves) commit "
        "waiting for the disk; default: not (README, Data access: a power failure may "
        "lose the last moments' records, a crash of the server none).",
    )
    key_last_used_resolution_s: int = Field(
        default=60, ge=0, description="last_used_at is written at most this often per key."
    )

    @model_validator(mode="after")
    def _defaults_and_secrets(self) -> Settings:
        # frozen model: fill derived defaults through object.__setattr__ once, here.
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.var_dir / 'oceanmart.db'}")
        if not self.data_url:
            object.__setattr__(self, "data_url", str(self.var_dir / "data"))
        if self.database_url.startswith(("postgresql://", "postgres://")):
            # psycopg 3 is the driver we ship; plain URLs would ask for psycopg2.
            rest = self.database_url.split("://", 1)[1]
            object.__setattr__(self, "database_url", f"postgresql+psycopg://{rest}")
        if not self.demo:
            for name in (
                "stripe_api_key",
                "stripe_webhook_secret",
                "operator_key",
                "ledger_secret",
            ):
                secret: SecretStr | None = getattr(self, name)
                if secret is not None and is_placeholder(secret.get_secret_value()):
                    raise ValueError(
                        f"OCEANMART_{name.upper()} holds a placeholder value; set a real "
                        "secret or unset it (placeholders are accepted only by `oceanmart demo`)"
                    )
        return self


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning validation failures into a ConfigurationError.

    pydantic's own message repeats the input values, which may be secrets; ours names
    the variable and the reason only.
    """
    from pydantic import ValidationError

    from oceanmart.errors import ConfigurationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        reasons = []
        for err in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in err["loc"])
            name = f"OCEANMART_{where.upper()}: " if where else ""
            reasons.append(f"{name}{err['msg'].removeprefix('Value error, ')}")
        raise ConfigurationError("; ".join(reasons)) from None
