from __future__ import annotations

from pathlib import Path

import pytest

from oceanmart.errors import ConfigurationError
from oceanmart.settings import is_placeholder, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "DATABASE_URL",
        "DATA_URL",
        "STRIPE_API_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "OPERATOR_KEY",
        "LEDGER_SECRET",
        "DEMO",
    ):
        monkeypatch.delenv(f"OCEANMART_{name}", raising=False)


def test_embedded_defaults_live_under_var() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///var/oceanmart.db"
    assert s.data_url == "var/data"
    assert s.chain_url is None and s.stripe_api_key is None


def test_environment_prefix_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OCEANMART_PORT=9123\nOCEANMART_DATA_URL=/srv/ocean\n")
    monkeypatch.setenv("OCEANMART_DATABASE_URL", "postgresql://u@db:5432/om")
    s = load_settings()
    assert s.port == 9123
    assert s.data_url == "/srv/ocean"
    # plain PostgreSQL URLs are pointed at the psycopg 3 driver we ship
    assert s.database_url == "postgresql+psycopg://u@db:5432/om"


@pytest.mark.parametrize("value", ["changeme", "sk_test_xxx", "whsec_...", "", "  secret "])
def test_placeholder_secrets_are_rejected_outside_the_demo(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OCEANMART_STRIPE_WEBHOOK_SECRET", value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "OCEANMART_STRIPE_WEBHOOK_SECRET" in info.value.detail
    assert load_settings(demo=True).demo is True


def test_configuration_errors_never_repeat_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCEANMART_STRIPE_API_KEY", "sk_live_realsecret123456")
    monkeypatch.setenv("OCEANMART_PORT", "not-a-port")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "OCEANMART_PORT" in info.value.detail
    assert "realsecret" not in info.value.detail


def test_real_looking_secrets_pass() -> None:
    assert not is_placeholder("sk_test_51Habc9dEfGh")
    assert is_placeholder("CHANGEME")


def test_operator_key_and_ledger_secret_are_kept_in_var(tmp_path: Path) -> None:
    from oceanmart.secrets import ledger_secret, operator_key

    s = load_settings(var_dir=tmp_path / "var")
    key, secret = operator_key(s), ledger_secret(s)
    assert len(key) == 32 and len(secret) == 32 and key != secret
    # stable across restarts of the same deployment, private to its owner
    assert operator_key(load_settings(var_dir=tmp_path / "var")) == key
    assert ledger_secret(load_settings(var_dir=tmp_path / "var")) == secret
    assert (tmp_path / "var" / "operator_key.hex").stat().st_mode & 0o777 == 0o600


def test_configured_operator_key_is_used_and_checked(tmp_path: Path) -> None:
    from oceanmart.secrets import operator_key

    good = "0x" + "11" * 32
    assert operator_key(load_settings(var_dir=tmp_path, operator_key=good)) == bytes([0x11] * 32)
    assert not (tmp_path / "operator_key.hex").exists()
    for bad in ("zz" * 32, "00" * 32, "ff" * 32, "11" * 16):
        with pytest.raises(ConfigurationError) as info:
            operator_key(load_settings(var_dir=tmp_path, operator_key=bad))
        assert "OCEANMART_OPERATOR_KEY" in info.value.detail
        assert bad not in info.value.detail
