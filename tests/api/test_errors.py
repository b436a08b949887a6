"""problem+json for every error kind, and bad input never turning into a 500."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from api.errors import STATUS, _domain_error, problem_type, status_for
from oceanmart.errors import InvalidParameter, OceanMartError, TooManyRequests, all_error_types
from tests.conftest import Server, running

SUBSET = "/v1/products/levitus-climatology/subset"


def _instance(cls: type[OceanMartError]) -> OceanMartError:
    if cls is InvalidParameter:
        return InvalidParameter("bbox", "bad")
    if cls is TooManyRequests:
        return TooManyRequests("slow down", retry_after=3)
    return cls("something went wrong", extensions={"hint": 1})


@pytest.mark.parametrize("cls", all_error_types(), ids=lambda c: c.__name__)
def test_every_error_type_has_a_status_and_a_problem_body(cls: type[OceanMartError]) -> None:
    exc = _instance(cls)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "headers": [],
        "query_string": b"",
        "app": FastAPI(),
    }
    response = asyncio.run(_domain_error(Request(scope), exc))
    body = json.loads(response.body)
    assert response.media_type == "application/problem+json"
    assert response.status_code == status_for(cls) and 400 <= response.status_code <= 503
    assert body["type"] == problem_type(cls.code) and body["title"] == cls.title
    assert body["status"] == response.status_code and body["detail"] == exc.detail
    assert body["instance"] == "/x"
    for key, value in exc.extensions.items():
        assert body[key] == value
    if cls is TooManyRequests:
        assert response.headers["retry-after"] == "3"


def test_codes_are_unique_and_every_class_maps_to_a_status() -> None:
    codes = [c.code for c in all_error_types()]
    assert len(codes) == len(set(codes))
    assert OceanMartError in STATUS


@pytest.fixture(scope="module")
def buyer(server: Server, levitus: str) -> str:
    from oceanmart.accounts import create_account, create_key
    from oceanmart.db import transaction
    from pricing.entitlements import grant
    from tests.conftest import unique

    name = unique("errs")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        grant(s, name, levitus, granted_by="test")
        return create_key(s, name, "catalog:read,data:read")[1]


@pytest.mark.parametrize(
    ("params", "code", "parameter"),
    [
        ({"bbox": "10,20,30"}, "invalid-parameter", "bbox"),
        ({"bbox": "a,b,c,d"}, "invalid-parameter", "bbox"),
        ({"bbox": "0,-95,10,10"}, "invalid-parameter", "bbox"),
        ({"bbox": "0,30,10,10"}, "invalid-parameter", "bbox"),
        ({"depth": "100,0"}, "invalid-parameter", "depth"),
        ({"depth": "deep"}, "invalid-parameter", "depth"),
        ({"variables": "TEMP,NOPE"}, "invalid-parameter", "variables"),
        ({"format": "grib"}, "invalid-parameter", "format"),
        ({"bbox": "0,0,0.1,0.1"}, "empty-selection", None),
        ({"depth": "6000,7000"}, "empty-selection", None),
    ],
)
def test_bad_selections_are_400_naming_the_parameter(
    server: Server, buyer: str, params: dict[str, str], code: str, parameter: str | None
) -> None:
    with server.client(buyer) as c:
        r = c.get(SUBSET, params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == f"/problems/{code}"
    if parameter:
        assert body["parameter"] == parameter and parameter in body["detail"]


def test_unknown_product_and_route_are_404(server: Server, buyer: str) -> None:
    with server.client(buyer) as c:
        r = c.get("/v1/products/no-such-product/subset", params={"bbox": "0,0,1,1"})
        assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"
        assert r.json()["product"] == "no-such-product"
        r = c.get("/v1/products/no-such-product")
        assert r.status_code == 404
        r = c.get("/nowhere")
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        r = c.post("/v1/products")
        assert r.status_code == 405 and r.json()["type"] == "/problems/method-not-allowed"


def test_too_large_is_413_with_the_estimate(server: Server, buyer: str) -> None:
    # The whole product is 20.7 MB of float32; an app with a tiny limit makes the guard speak.
    settings = server.env.settings.model_copy(update={"max_request_bytes": 1000})
    with running(settings) as url, httpx.Client(base_url=url) as c:
        r = c.get(SUBSET, params={"variables": "TEMP"}, headers={"X-API-Key": buyer})
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["type"] == "/problems/request-too-large"
    assert body["cells"] == 20 * 180 * 360 and body["bytes"] == 20 * 180 * 360 * 4
    assert body["limit_bytes"] == 1000


def test_malformed_json_bodies_are_400(server: Server) -> None:
    admin = server.env.admin_key()
    with server.client(admin) as c:
        r = c.post(
            "/v1/accounts", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and r.json()["type"] == "/problems/invalid-parameter"
        r = c.post("/v1/accounts", json={"name": "x", "kind": "pirate"})
        assert r.status_code == 400 and r.json()["parameter"] == "kind"
        r = c.post("/v1/keys", json={"account": "nobody-here", "scopes": ["admin"]})
        assert r.status_code == 404


def test_problem_types_are_documented(server: Server) -> None:
    with server.client() as c:
        for cls in all_error_types():
            r = c.get(problem_type(cls.code))
            assert r.status_code == 200 and r.json()["title"] == cls.title
