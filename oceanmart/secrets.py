"""The operator's signing key and the ledger's pseudonymisation secret.

Both come from Settings (``OCEANMART_OPERATOR_KEY``, ``OCEANMART_LEDGER_SECRET``). Unset
means the embedded default: a random value generated on first use and kept in
``var/`` (mode 0600), so signatures and pseudonyms stay stable across restarts of the
same deployment. Production sets both explicitly (several servers must share them).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from oceanmart.errors import ConfigurationError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from oceanmart.settings import Settings

# Order of the secp256k1 group: a private key must lie in [1, N).
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _valid_operator_key(key: bytes) -> bool:
    return len(key) == 32 and 0 < int.from_bytes(key, "big") < _SECP256K1_N


def _from_hex(name: str, value: str) -> bytes:
    try:
        return bytes.fromhex(value.strip().removeprefix("0x"))
    except ValueError:
        raise ConfigurationError(f"OCEANMART_{name.upper()}: not a hex string") from None


def _kept(path: Path) -> bytes:
    """Read the value kept at ``path``, or create it (atomically, mode 0600)."""
    try:
        return _from_hex(path.stem, path.read_text())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        value = secrets.token_bytes(32)
        if _valid_operator_key(value):
            break
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value.hex() + "\n")
    try:
        # link, not rename: if another process created the file first, keep theirs.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _from_hex(path.stem, path.read_text())


def _secret(settings: Settings, name: str) -> bytes:
    configured: SecretStr | None = getattr(settings, name)
    if configured is not None:
        return _from_hex(name, configured.get_secret_value())
    return _kept(settings.var_dir / f"{name}.hex")


def operator_key(settings: Settings) -> bytes:
    """The operator's 32-byte secp256k1 private key."""
    key = _secret(settings, "operator_key")
    if not _valid_operator_key(key):
        raise ConfigurationError("OCEANMART_OPERATOR_KEY: not a 32-byte secp256k1 private key")
    return key


def ledger_secret(settings: Settings) -> bytes:
    """The HMAC key of the ledger's pseudonymous account ids (at least 16 bytes)."""
    value = _secret(settings, "ledger_secret")
    if len(value) < 16:
        raise ConfigurationError("OCEANMART_LEDGER_SECRET: shorter than 16 bytes")
    return value
