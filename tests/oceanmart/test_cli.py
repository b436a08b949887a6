"""The `oceanmart` command as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from catalog.models import Product
from tests.conftest import ROOT, Env, unique

OCEANMART = str(Path(sys.executable).with_name("oceanmart"))
KEY_LINE = re.compile(r"^om_[0-9a-f]{16}_[a-z2-7]{32}$")


def run(env: Env, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "OCEANMART_DATABASE_URL": env.settings.database_url,
        "OCEANMART_DATA_URL": env.settings.data_url,
        "OCEANMART_CORPUS_DIR": str(env.settings.corpus_dir),
        "OCEANMART_LOG_FORMAT": "json",
    }
    return subprocess.run(
        [OCEANMART, *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=300,
        check=False,
    )


COMMANDS = [
    [],
    ["demo"],
    ["serve"],
    ["ingest"],
    ["db"],
    ["db", "upgrade"],
    ["accounts"],
    ["accounts", "create"],
    ["accounts", "list"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["entitlements", "grant"],
    ["products"],
    ["products", "list"],
    ["corpus", "fetch"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "oceanmart")
def test_every_command_has_useful_help(env: Env, command: list[str]) -> None:
    r = run(env, *command, "--help")
    assert r.returncode == 0, r.stderr
    assert "Usage: oceanmart" in r.stdout
    # a description, not just the usage line
    assert len([line for line in r.stdout.splitlines() if line.strip()]) >= 4


def test_accounts_and_keys_are_scriptable(env: Env) -> None:
    name = unique("cli")
    r = run(env, "accounts", "create", name, "--kind", "enterprise")
    assert r.returncode == 0, r.stderr
    r = run(
        env, "keys", "create", "--account", name, "--scopes", "catalog:read,data:read,orders:write"
    )
    assert r.returncode == 0, r.stderr
    key = r.stdout.splitlines()[-1]
    assert KEY_LINE.match(key), r.stdout
    key_id, secret = key.split("_")[1:]
    listed = run(env, "keys", "list", "--account", name)
    assert key_id in listed.stdout and secret not in listed.stdout + listed.stderr
    assert "active" in listed.stdout
    r = run(env, "keys", "revoke", key_id)
    assert r.returncode == 0 and "revoked" in r.stdout
    assert "revoked" in run(env, "keys", "list", "--account", name).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["accounts", "create", "x y", "--kind", "enterprise"], "account name"),
        (["accounts", "create", "ok-name", "--kind", "pirate"], "unknown account kind"),
        (["keys", "create", "--account", "nobody-at-all"], "no account named"),
        (["keys", "revoke", "0000000000000000"], "no key with id"),
        (["entitlements", "grant", "--account", "nobody", "--product", "x"], "no account"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(env: Env, args: list[str], message: str) -> None:
    r = run(env, *args)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("damage", ["missing", "corrupt", "bad-spec"])
def test_bad_ingest_input_is_one_line_naming_the_file(
    fresh_env: Env, tmp_path: Path, damage: str
) -> None:
    target = tmp_path / "waves.nc"
    if damage == "missing":
        args = [str(target), "--product", "waves"]
    elif damage == "corrupt":
        target.write_bytes(b"CDF\x01" + os.urandom(4000))
        args = [str(target), "--product", "waves"]
    else:
        target = tmp_path / "spec.yaml"
        target.write_text("id: Not An Id\ntitle: {en: x}\nsources: []\n")
        args = [str(target)]
    r = run(fresh_env, "ingest", *args)
    assert r.returncode == 1, r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(target) in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    with fresh_env.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Product)) == 0
    assert not (fresh_env.store.root / "products").exists()


def test_ingest_files_with_an_inferred_spec(fresh_env: Env, levitus_file: Path) -> None:
    r = run(fresh_env, "ingest", str(levitus_file), "--product", "levitus-raw")
    assert r.returncode == 0, r.stderr
    assert "id: levitus-raw" in r.stderr and str(levitus_file) in r.stderr  # printed spec
    assert re.search(r"published levitus-raw version [0-9a-f]{20}: 2592000 values", r.stdout)
    assert "levitus-raw" in run(fresh_env, "products", "list").stdout


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    environ = {**os.environ, "OCEANMART_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    r = subprocess.run(
        [OCEANMART, "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1 and "oceanmart db upgrade" in r.stderr
    r = subprocess.run(
        [OCEANMART, "db", "upgrade"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    newest = max(p.name[:4] for p in (ROOT / "oceanmart/migrations/versions").glob("0*.py"))
    assert r.returncode == 0 and f"database at revision {newest}" in r.stdout


def test_placeholder_secret_is_a_clear_cli_error(env: Env) -> None:
    environ = {**os.environ, "OCEANMART_STRIPE_API_KEY": "sk_test_xxx"}
    r = subprocess.run(
        [OCEANMART, "products", "list"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
    assert "error: OCEANMART_STRIPE_API_KEY holds a placeholder value" in r.stderr


def test_ingest_into_an_unmigrated_database_publishes_nothing(
    tmp_path: Path, levitus_file: Path
) -> None:
    """The catalog is opened and its schema checked in a thread while the data are
    written; an out-of-date schema still fails the ingest, before anything is published."""
    data = tmp_path / "data"
    environ = {
        **os.environ,
        "OCEANMART_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "OCEANMART_DATA_URL": str(data),
    }
    r = subprocess.run(
        [OCEANMART, "ingest", str(levitus_file), "--product", "levitus-raw"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
        check=False,
    )
    assert r.returncode == 1, r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "oceanmart db upgrade" in errors[0], r.stderr
    assert not (data / "products").exists() or not any((data / "products").iterdir())
    assert not (data / ".staging").exists() or not any((data / ".staging").iterdir())
