"""The entitlement matrix: every data route x every way of not being entitled.

Only the "valid" row gets data; every other row gets a problem (401, 403 or 404) with no
access id, and nothing is metered. The routes are taken from the app's route table, so
a new data route without a row here fails the test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from oceanmart.accounts import create_account, create_key, revoke_key
from oceanmart.db import transaction
from pricing.entitlements import create_for_order, grant
from pricing.metering import AccessRecord
from tests.api.test_gate import api_routes, serves_data
from tests.conftest import Server, unique

LEV, NAVY = "levitus-climatology", "navy-winds-monthly"
BOX_A = {"bbox": [0, 0, 5, 5], "depth": [0, 10], "variables": ["TEMP"]}
BOX_B = {"bbox": [10, 10, 15, 15], "depth": [0, 10], "variables": ["TEMP"]}
PAST = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass
class World:
    subset_a: str
    job: str
    keys: dict[str, str | None]


Request = Callable[[httpx.Client, World], httpx.Response]

EDR = {"parameter-name": "TEMP", "z": "0"}
# One request per data route (path template -> how to call it).
ROUTES: dict[str, Request] = {
    "/v1/products/{product_id}/subset": lambda c, w: c.get(
        f"/v1/products/{LEV}/subset", params={"bbox": "0,0,5,5", "depth": "0,10"}
    ),
    "/zarr/products/{product_id}/copies/{copy}/{key:path}": lambda c, w: c.get(
        f"/zarr/products/{LEV}/copies/series/TEMP/c/0/0/0"
    ),
    "/zarr/products/{product_id}/{key:path}": lambda c, w: c.get(
        f"/zarr/products/{LEV}/TEMP/c/0/0/0"
    ),
    "/zarr/subsets/{subset_id}/{key:path}": lambda c, w: c.get(
        f"/zarr/subsets/{w.subset_a}/TEMP/c/0/0/0"
    ),
    "/v1/subsets/{subset_id}/download": lambda c, w: c.get(f"/v1/subsets/{w.subset_a}/download"),
    "/edr/collections/{product_id}/position": lambda c, w: c.get(
        f"/edr/collections/{LEV}/position", params={"coords": "POINT(1 1)", **EDR}
    ),
    "/edr/collections/{product_id}/area": lambda c, w: c.get(
        f"/edr/collections/{LEV}/area", params={"coords": "POLYGON((0 0,5 0,5 5,0 0))", **EDR}
    ),
    "/edr/collections/{product_id}/cube": lambda c, w: c.get(
        f"/edr/collections/{LEV}/cube", params={"bbox": "0,0,5,5", **EDR}
    ),
    "/edr/collections/{product_id}/trajectory": lambda c, w: c.get(
        f"/edr/collections/{LEV}/trajectory", params={"coords": "LINESTRING(0 0,5 5)", **EDR}
    ),
    "/edr/collections/{product_id}/radius": lambda c, w: c.get(
        f"/edr/collections/{LEV}/radius",
        params={"coords": "POINT(1 1)", "within": "100", "within-units": "km", **EDR},
    ),
    "/v1/components/{component_id}/runs": lambda c, w: c.post(
        "/v1/components/vertical-profile/runs",
        json={"product": LEV, "parameters": {"variables": ["TEMP"], "point": [1, 1]}},
    ),
    "/v1/jobs/{job_id}/results": lambda c, w: c.get(f"/v1/jobs/{w.job}/results"),
}
SUBSET_ROUTES = {"/zarr/subsets/{subset_id}/{key:path}", "/v1/subsets/{subset_id}/download"}
CASES = (
    "no key", "bad key", "revoked key", "wrong scope", "no entitlement",
    "another product", "another subset", "expired", "valid",
)  # fmt: skip


def _account(server: Server, how: Callable[[Any, str, int], None] | None = None) -> tuple[str, str]:
    name = unique("matrix")
    with transaction(server.env.sessions) as s:
        account = create_account(s, name, "enterprise")
        if how is not None:
            how(s, name, account.id)
        return name, create_key(s, name, "catalog:read,data:read")[1]


@pytest.fixture(scope="module")
def world(server: Server, levitus: str, navy_winds: str) -> World:
    env = server.env
    admin = server.client(env.admin_key())
    subset_a = admin.post("/v1/plans", json={"product": LEV, "selection": BOX_A}).json()
    subset_b = admin.post("/v1/plans", json={"product": LEV, "selection": BOX_B}).json()
    now = datetime.now(UTC)
    keys: dict[str, str | None] = {"no key": None, "bad key": "om_0123456789abcdef_nope"}
    name, valid = _account(server, lambda s, n, a: grant(s, n, LEV, granted_by="test"))
    keys["valid"] = valid
    with transaction(env.sessions) as s:
        keys["wrong scope"] = create_key(s, name, "catalog:read")[1]
        info, keys["revoked key"] = create_key(s, name, "catalog:read,data:read")
        revoke_key(s, info.id)
    keys["no entitlement"] = _account(server)[1]
    keys["another product"] = _account(
        server, lambda s, n, a: grant(s, n, NAVY, granted_by="test")
    )[1]
    keys["another subset"] = _account(
        server,
        lambda s, n, a: create_for_order(
            s,
            account_id=a,
            product_id=LEV,
            kind="subset",
            order_id="ord_matrix_b",
            now=now,
            expires_at=now + timedelta(days=30),
            subset_id=subset_b["subset_id"],
        ),
    )[1]
    keys["expired"] = _account(
        server, lambda s, n, a: grant(s, n, LEV, granted_by="test", expires_at=PAST)
    )[1]
    with server.client(valid) as c:
        job = c.post("/v1/jobs", json={"product": LEV, "selection": BOX_A}).json()["id"]
        for _ in range(600):
            if c.get(f"/v1/jobs/{job}").json()["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.05)
    return World(subset_a["subset_id"], job, keys)


def test_the_matrix_covers_every_data_route(server: Server) -> None:
    assert {p for p, r in api_routes(server.app) if serves_data(p, r)} == set(ROUTES)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_only_valid_gets_data(server: Server, world: World, route: str, case: str) -> None:
    key = world.keys[case]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        if key is not None:
            c.headers["Authorization"] = f"Bearer {key}"
        r = ROUTES[route](c, world)
    if case == "valid":
        assert r.status_code == 200, r.text
        assert r.headers["oceanmart-access-id"].startswith("acc_")
        return
    assert r.status_code in (401, 403, 404), (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"
    assert "oceanmart-access-id" not in r.headers
    expected = {
        "no key": 401, "bad key": 401, "revoked key": 401, "wrong scope": 403,
    }.get(case)  # fmt: skip
    if route == "/v1/jobs/{job_id}/results" and case not in (
        "no key",
        "bad key",
        "revoked key",
        "wrong scope",
    ):
        expected = 404  # another account's job is as missing as an unknown one
    if expected is not None:
        assert r.status_code == expected, r.text
    elif route != "/v1/jobs/{job_id}/results":
        assert r.status_code == 403 and r.json()["type"] == "/problems/not-entitled", r.text
    if key is not None and key.count("_") == 2 and case != "bad key":
        key_id = key.split("_")[1]
        with server.env.sessions() as s:
            assert s.query(AccessRecord).filter_by(key_id=key_id).count() == 0


def test_a_purchased_subset_opens_that_subset_only(server: Server, world: World) -> None:
    now = datetime.now(UTC)
    _, key = _account(
        server,
        lambda s, n, a: create_for_order(
            s,
            account_id=a,
            product_id=LEV,
            kind="subset",
            order_id="ord_matrix_a",
            now=now,
            expires_at=now + timedelta(days=30),
            subset_id=world.subset_a,
        ),
    )
    with server.client(key) as c:
        for route, call in ROUTES.items():
            r = call(c, world)
            if route in SUBSET_ROUTES:
                assert r.status_code == 200, (route, r.text)
            else:
                assert r.status_code in (403, 404), (route, r.status_code)
