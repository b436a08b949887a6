"""`oceanmart credits` and `oceanmart price-books` as a user runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import Env, unique
from tests.oceanmart.test_cli import OCEANMART, run
from tests.pricing.conftest import BASIC, PRODUCT


def test_pricing_commands_have_help() -> None:
    for group, commands in (
        ("credits", ("grant", "balance", "check")),
        ("price-books", ("show", "set")),
    ):
        r = subprocess.run(
            [OCEANMART, group, "--help"], capture_output=True, text=True, check=False
        )
        assert r.returncode == 0 and "Usage: oceanmart" in r.stdout, r.stderr
        assert all(c in r.stdout for c in commands)


def test_credits_grant_in_major_units_and_balance(env: Env) -> None:
    name = unique("cli-credits")
    assert run(env, "accounts", "create", name, "--kind", "enterprise").returncode == 0
    r = run(env, "credits", "grant", "--account", name, "--amount", "1000", "--currency", "CNY")
    assert r.returncode == 0, r.stderr
    assert "¥1000.00" in r.stdout
    run(env, "credits", "grant", "--account", name, "--amount", "12.34", "--currency", "usd")
    balance = run(env, "credits", "balance", "--account", name)
    assert balance.stdout.splitlines() == ["CNY\t1000.00", "USD\t12.34"]
    check = run(env, "credits", "check")
    assert check.returncode == 0 and "unbalanced none" in check.stdout
    for amount, currency, message in (
        ("1.234", "CNY", "decimal places"),
        ("-5", "CNY", "positive"),
        ("ten", "CNY", "not a number"),
        ("5", "EUR", "unknown currency"),
    ):
        r = run(
            env, "credits", "grant", "--account", name, "--amount", amount, "--currency", currency
        )
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.returncode == 1 and len(errors) == 1 and message in errors[0], r.stderr
    r = run(env, "credits", "grant", "--account", "nobody-here", "--amount", "1")
    assert r.returncode == 1 and "no account named" in r.stderr


def test_price_books_set_and_show(env: Env, levitus: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({**BASIC, "base_fee": 321}))
    r = run(env, "price-books", "set", PRODUCT, str(rules), "--note", "cli test")
    assert r.returncode == 0, r.stderr
    shown = run(env, "price-books", "show", PRODUCT)
    assert shown.returncode == 0
    doc = json.loads(shown.stdout.split("\n", 1)[1])
    assert doc["base_fee"] == 321 and doc["rate_per_million_cells"] == 100
    rules.write_text(json.dumps({"base_fee": -1}))
    bad = run(env, "price-books", "set", PRODUCT, str(rules))
    assert bad.returncode == 1 and "rules.base_fee" in bad.stderr
