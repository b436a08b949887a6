"""The admin pricing console in real Chromium (Playwright driving Debian's /usr/bin/chromium),
and the walls around it: no console page or admin route for a non-admin key."""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from api import create_app
from tests.api.test_gate import api_routes
from tests.conftest import ROOT, Server, unavailable
from tests.pricing.conftest import BASIC, PRODUCT, buyer, use_book

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SHOTS = ROOT / "test-output" / "console"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        unavailable("Debian's chromium is not installed (make system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # headless=True adds --headless; never `playwright install`: Debian's Chromium
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def _shot(page: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000, f"{path} is not a real screenshot"
    print(f"screenshot: {path}")  # listed in the test output (pytest -rA or on failure)
    return path


@pytest.mark.slow
def test_an_admin_changes_a_rate_sees_the_preview_and_saves_a_version(
    server: Server, priced: str, browser: Any, record_property: Any
) -> None:
    folder = SHOTS / server.env.backend
    folder.mkdir(parents=True, exist_ok=True)
    book = use_book(server.env, BASIC)
    admin = server.env.admin_key()
    _, buyer_key = buyer(server.env)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    shots = []
    try:
        page.goto(f"{server.url}/console")
        assert page.url.endswith("/console/login")
        page.fill("#key", admin)
        page.click("#sign-in")
        page.wait_for_url(re.compile(r".*/console$"))
        shots.append(_shot(page, folder, "1-overview"))

        page.goto(f"{server.url}/console/products/{PRODUCT}")
        whole = 'tr[data-example="ex_whole"]'
        page.wait_for_selector(f"{whole} td.draft-commercial")
        # BASIC: 2.00 + 2,592,000 cells x 1.00 per million = 4.59
        assert page.inner_text(f"{whole} td.draft-commercial") == "¥4.59"
        assert page.inner_text(f"{whole} td.current") == "¥4.59"
        shots.append(_shot(page, folder, "2-editor"))

        page.fill("#rate_per_million_cells", "5000")  # 50.00 per million cells
        page.wait_for_function(
            "() => document.querySelector('tr[data-example=\"ex_whole\"] td.draft-commercial')"
            ".textContent === '¥131.60'"
        )
        assert page.inner_text(f"{whole} td.current") == "¥4.59"  # not saved yet
        assert page.inner_text(f"{whole} td.draft-research") == "¥65.80"  # research x 0.5
        shots.append(_shot(page, folder, "3-preview-changed"))
        assert shots[-1].read_bytes() != shots[-2].read_bytes()

        page.click("#save")
        page.wait_for_selector("#saved")
        assert page.inner_text("#book-version") == str(book.version + 1)
        shots.append(_shot(page, folder, "4-saved"))

        with server.client(buyer_key) as c:
            q = c.post("/v1/quotes", json={"product": PRODUCT, "selection": {}}).json()
        assert q["price_book"]["version"] == book.version + 1
        assert q["total"]["amount"] == 13_160

        page.click("a.lang")
        page.wait_for_selector("text=保存为新版本")
        shots.append(_shot(page, folder, "5-zh-CN"))

        cookie = next(c for c in context.cookies() if c["name"] == "om_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        jar = {"om_console": cookie["value"]}
        with httpx.Client(base_url=server.url, cookies=jar) as h:
            form = {"rate_per_million_cells": "1", "advanced": "{}", "version": "0"}
            for csrf in (None, "forged"):
                data = form if csrf is None else {**form, "csrf": csrf}
                r = h.post(f"/console/products/{PRODUCT}", data=data)
                assert r.status_code == 403 and r.json()["type"] == "/problems/csrf-failed"
            assert h.get("/console/orders").status_code == 200

        page.click("header form button")  # sign out
        page.wait_for_url(re.compile(r".*/console/login$"))
        with httpx.Client(base_url=server.url, cookies=jar) as h:
            r = h.get("/console/orders", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/console/login"
    finally:
        record_property("screenshots", ",".join(str(p) for p in shots))
        context.close()


@pytest.mark.slow
def test_a_non_admin_key_cannot_sign_in(server: Server, priced: str, browser: Any) -> None:
    _, key = buyer(server.env)
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{server.url}/console/login")
        page.fill("#key", key)
        page.click("#sign-in")
        page.wait_for_selector(".error")
        assert "admin" in page.inner_text(".error")
        assert page.url.endswith("/console/login")
        assert not [c for c in context.cookies() if c["name"] == "om_console"]
        page.goto(f"{server.url}/console/accounts")
        assert page.url.endswith("/console/login")
    finally:
        context.close()


def _fill(path: str) -> str:
    values = {
        "product_id": PRODUCT,
        "key_id": "0123456789abcdef",
        "order_id": "ord_x",
        "account": "nobody",
        "quote_id": "q_x",
        "entitlement_id": "1",
    }
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: values.get(m.group(1), "x"), path)


def _needs_admin(route: APIRoute) -> bool:
    def walk(dep: Any) -> bool:
        name = getattr(dep.call, "__name__", "")
        return name == "require_admin" or any(walk(d) for d in dep.dependencies)

    return walk(route.dependant)


def test_no_console_page_or_admin_route_for_a_non_admin_key(server: Server, priced: str) -> None:
    _, key = buyer(server.env, scopes="catalog:read,data:read,orders:write")
    app = create_app(server.env.settings)
    routes = api_routes(app)
    console = [(p, r) for p, r in routes if p.startswith("/console") and p != "/console/login"]
    admin = [(p, r) for p, r in routes if _needs_admin(r)]
    assert len(console) >= 10 and len(admin) >= 10
    assert {"/v1/accounts", "/v1/credits/grants", "/v1/revenue"} <= {p for p, _ in admin}
    headers = {"Authorization": f"Bearer {key}"}
    forged = {"om_console": secrets.token_urlsafe(32)}
    callers = (
        httpx.Client(base_url=server.url, headers=headers),
        httpx.Client(base_url=server.url, cookies=forged),
        httpx.Client(base_url=server.url),
    )
    for h in callers:
        with h:
            for path, route in console:
                for method in route.methods:
                    r = h.request(method, _fill(path), data={"csrf": "x"})
                    if method == "GET":
                        assert r.status_code == 303, (method, path, r.status_code)
                        assert r.headers["location"] == "/console/login"
                    else:
                        assert r.status_code == 401, (method, path, r.status_code)
    with httpx.Client(base_url=server.url, headers=headers) as h:
        for path, route in admin:
            for method in route.methods:
                r = h.request(method, _fill(path), json={})
                assert r.status_code == 403, (method, path, r.status_code, r.text)
                assert r.json()["type"] == "/problems/insufficient-scope"
