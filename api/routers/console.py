"""The admin pricing console at /console: server-rendered pages (zh-CN and en) with htmx
(vendored under api/console/static, no CDN) for the live quote preview.

Sign-in takes an admin API key and opens a session (HttpOnly, SameSite=Strict cookie);
every form carries the session's CSRF token; every request re-checks the session's key,
so revoking it or removing its admin scope ends the session.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.console.i18n import LANGS, pick_language, translator
from api.deps import (
    CONSOLE_COOKIE,
    ConsoleForm,
    ConsoleUser,
    LedgerDep,
    PaymentsDep,
    SessionsDep,
    StoreDep,
)
from api.routers import Router
from catalog.products import OPERATOR, get_product, list_products
from oceanmart import accounts as acc
from oceanmart.db import transaction, utcnow
from oceanmart.errors import (
    AuthenticationRequired,
    EmptySelection,
    InvalidInput,
    InvalidParameter,
    NotForSale,
    OceanMartError,
)
from oceanmart.web_sessions import LIFETIME, close_session, open_session
from pricing import credits, orders, reports
from pricing.books import PriceRules, current_book, current_versions, parse_rules, save_book
from pricing.engine import Customer, License, Offer
from pricing.money import Currency, Money, from_major
from pricing.quotes import QuoteRequest, plan_request, price_planned, set_tier, tier_of

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
TEMPLATES = Jinja2Templates(directory=CONSOLE_DIR / "templates")
LOGIN_CSRF = "om_login_csrf"
LANG_COOKIE = "om_lang"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Fields edited as inputs; every other rule is edited as JSON.
SIMPLE = (
    "currency",
    "base_fee",
    "rate_per_million_cells",
    "rate_per_mb",
    "minimum_charge",
    "monthly_free_cells",
    "download_days",
    "quote_ttl_minutes",
    "provider_share_pct",
)
EXAMPLES: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("ex_small", {"bbox": [120, 25, 130, 35]}),
    ("ex_large", {"bbox": [110, 0, 150, 40]}),
    ("ex_whole", {}),
    ("ex_stride", {"stride": 4}),
    ("ex_sub", None),  # the subscription offer
)

router = Router(prefix="/console", include_in_schema=False)


def _lang(request: Request) -> str:
    return pick_language(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def render(
    request: Request, name: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    lang = _lang(request)
    response = TEMPLATES.TemplateResponse(
        request,
        name,
        {
            "t": translator(lang),
            "lang": lang,
            "other_lang": "en" if lang == "zh" else "zh",
            **context,
        },
        status_code=status,
    )
    response.headers.update(SECURITY_HEADERS)
    if request.query_params.get("lang") in LANGS:
        _cookie(request, response, LANG_COOKIE, lang, 365 * 86400)
    return response


def _money(amount: int, currency: str) -> str:
    return Money(amount, Currency(currency)).display()


# -- sign in and out --------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {"csrf": token, "error": None})
    _cookie(request, response, LOGIN_CSRF, token, 3600)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    sessions: SessionsDep,
    key: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=200)],
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF) or ""
    t = translator(_lang(request))
    fresh = secrets.token_urlsafe(24)

    def refuse(message: str, status: int) -> HTMLResponse:
        response = render(request, "login.html", {"csrf": fresh, "error": message}, status=status)
        _cookie(request, response, LOGIN_CSRF, fresh, 3600)
        return response

    if not expected or not secrets.compare_digest(expected, csrf):
        return refuse("CSRF", 403)
    try:
        with transaction(sessions) as session:
            principal = acc.authenticate(session, key)
            if not principal.has(acc.Scope.ADMIN):
                return refuse(t["not_admin"], 403)
            token, _ = open_session(session, principal.key_id)
    except AuthenticationRequired:
        return refuse(t["bad_key"], 401)
    response = RedirectResponse("/console", status_code=303)
    _cookie(request, response, CONSOLE_COOKIE, token, int(LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_CSRF, path="/console")
    return response


@router.post("/logout")
def logout(request: Request, form: ConsoleForm, sessions: SessionsDep) -> RedirectResponse:
    with transaction(sessions) as session:
        close_session(session, request.cookies.get(CONSOLE_COOKIE))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(CONSOLE_COOKIE, path="/console")
    return response


# -- overview ---------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def dashboard(
    request: Request, user: ConsoleUser, sessions: SessionsDep, payments: PaymentsDep
) -> HTMLResponse:
    today = utcnow().date()
    with sessions() as session:
        products = list_products(session)
        rows = reports.revenue(session, today - timedelta(days=30), today)
        fulfilled = orders.list_orders(session, status="fulfilled", limit=1000)
    return render(
        request,
        "dashboard.html",
        {
            "user": user,
            "products": len(products),
            "fulfilled": len(fulfilled),
            "by_product": reports.totals(rows, "product"),
            "money": _money,
            "signer": payments.signer.address,
        },
    )


# -- products and price books -----------------------------------------------------------


@router.get("/products", response_class=HTMLResponse)
def products(request: Request, user: ConsoleUser, sessions: SessionsDep) -> HTMLResponse:
    with sessions() as session:
        items = list_products(session)
        versions = current_versions(session)
    return render(request, "products.html", {"user": user, "products": items, "versions": versions})


def _book_or_default(session: Any, product_id: str) -> tuple[PriceRules, int]:
    try:
        book = current_book(session, product_id)
        return book.rules, book.version
    except NotForSale:
        return PriceRules(), 0


def _editor_fields(rules: PriceRules) -> tuple[dict[str, str], str]:
    doc = rules.model_dump(mode="json")
    simple = {k: str(doc.pop(k)) for k in SIMPLE}
    return simple, json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True)


@router.get("/products/{product_id}", response_class=HTMLResponse)
def product_page(
    request: Request,
    product_id: str,
    user: ConsoleUser,
    sessions: SessionsDep,
    saved: Annotated[int | None, Query()] = None,
) -> HTMLResponse:
    with sessions() as session:
        product = get_product(session, product_id, OPERATOR)
        rules, version = _book_or_default(session, product.id)
    simple, advanced = _editor_fields(rules)
    return render(
        request,
        "product.html",
        {
            "user": user,
            "product": product,
            "version": version,
            "simple": simple,
            "advanced": advanced,
            "currencies": [c.value for c in Currency],
            "saved": saved,
            "error": None,
        },
    )


def _draft(form: dict[str, str]) -> PriceRules:
    try:
        doc = json.loads(form.get("advanced") or "{}")
    except ValueError as exc:
        raise InvalidParameter("advanced", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("advanced", "expected a JSON object")
    for name in SIMPLE:
        value = form.get(name, "").strip()
        if value:
            doc[name] = value
    return parse_rules(doc)


@dataclass
class PreviewRow:
    key: str
    cells: int | None
    error: str | None
    totals: dict[str, str]


@router.post("/products/{product_id}/preview", response_class=HTMLResponse)
def preview(
    request: Request,
    product_id: str,
    form: ConsoleForm,
    sessions: SessionsDep,
    store: StoreDep,
) -> HTMLResponse:
    """The preview table for the draft rules in the form (an htmx fragment)."""
    t = translator(_lang(request))
    now = utcnow().replace(microsecond=0)
    with sessions() as session:
        product = get_product(session, product_id, OPERATOR)
        current, version = _book_or_default(session, product.id)
        try:
            draft = _draft(form)
        except InvalidInput as exc:
            return render(request, "preview.html", {"error": exc.detail, "rows": [], "lines": []})
        examples = list(EXAMPLES)
        custom = form.get("custom", "").strip()
        if custom:
            try:
                examples.insert(0, ("custom", json.loads(custom)))
            except ValueError:
                return render(
                    request,
                    "preview.html",
                    {"error": f"{t['custom_selection']}: not JSON", "rows": [], "lines": []},
                )
        rows, lines, lines_of = [], [], None
        for key, selection in examples:
            offer = Offer.SUBSCRIPTION if selection is None else Offer.SUBSET
            if offer is Offer.SUBSCRIPTION and draft.subscription is None:
                continue
            req = QuoteRequest(product.id, selection or {}, None, offer)
            try:
                planned = plan_request(session, store, OPERATOR, req)
            except (EmptySelection, InvalidInput) as exc:
                rows.append(PreviewRow(key, None, exc.detail, {}))
                continue
            totals: dict[str, str] = {}
            for column, rules, lic in (
                ("current", current if version else None, License.COMMERCIAL),
                ("commercial", draft, License.COMMERCIAL),
                ("research", draft, License.RESEARCH),
                ("government", draft, License.GOVERNMENT),
            ):
                if rules is None or (offer is Offer.SUBSCRIPTION and rules.subscription is None):
                    totals[column] = "—"
                    continue
                priced = price_planned(planned, rules, Customer("preview", lic), now)
                totals[column] = priced.money(priced.total).display()
                if column == "commercial" and lines_of is None:
                    lines_of, lines = key, list(priced.lines)
            rows.append(PreviewRow(key, planned.plan.cells, None, totals))
    return render(
        request,
        "preview.html",
        {
            "error": None,
            "rows": rows,
            "lines": lines,
            "lines_of": lines_of,
            "currency": draft.currency,
        },
    )


@router.post("/products/{product_id}", response_class=HTMLResponse)
def save(
    request: Request,
    product_id: str,
    user: ConsoleUser,
    form: ConsoleForm,
    sessions: SessionsDep,
    ledger: LedgerDep,
) -> Response:
    expect = int(form.get("version", "0") or 0)
    try:
        rules = _draft(form)
        with transaction(sessions) as session:
            book = save_book(
                session,
                product_id,
                rules,
                created_by=user.account_name,
                ledger=ledger,
                note=form.get("note", "")[:200],
                expect_version=expect or None,
            )
    except OceanMartError as exc:
        with sessions() as session:
            product = get_product(session, product_id, OPERATOR)
        return render(
            request,
            "product.html",
            {
                "user": user,
                "product": product,
                "version": expect,
                "simple": {k: form.get(k, "") for k in SIMPLE},
                "advanced": form.get("advanced", ""),
                "currencies": [c.value for c in Currency],
                "saved": None,
                "error": exc.detail,
            },
            status=400 if isinstance(exc, InvalidInput) else 409,
        )
    return RedirectResponse(f"/console/products/{product_id}?saved={book.version}", status_code=303)


# -- orders, revenue, accounts ----------------------------------------------------------


@router.get("/orders", response_class=HTMLResponse)
def orders_page(
    request: Request,
    user: ConsoleUser,
    sessions: SessionsDep,
    status: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    with sessions() as session:
        rows = orders.list_orders(session, status=status or None, limit=500)
    return render(
        request,
        "orders.html",
        {
            "user": user,
            "orders": rows,
            "status": status or "",
            "statuses": [s.value for s in orders.OrderStatus],
        },
    )


@router.get("/revenue", response_class=HTMLResponse)
def revenue_page(
    request: Request,
    user: ConsoleUser,
    sessions: SessionsDep,
    format: Annotated[str, Query()] = "html",
) -> Response:
    today = utcnow().date()
    start = today - timedelta(days=30)
    with sessions() as session:
        rows = reports.revenue(session, start, today)
    if format == "csv":
        return PlainTextResponse(
            reports.to_csv(rows, reports.RevenueRow),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="revenue-{start}-{today}.csv"'},
        )
    return render(
        request,
        "revenue.html",
        {
            "user": user,
            "by_product": reports.totals(rows, "product"),
            "by_theme": reports.totals(rows, "theme"),
            "rows": rows,
            "money": _money,
        },
    )


def _accounts_context(session: Any, user: Any) -> dict[str, Any]:
    items = []
    for a in acc.list_accounts(session):
        items.append(
            {
                "account": a,
                "tier": tier_of(session, a.id) or "",
                "balances": credits.balances(session, a.id),
                "keys": acc.list_keys(session, a.name),
            }
        )
    return {"user": user, "accounts": items, "new_key": None, "message": None, "error": None}


@router.get("/accounts", response_class=HTMLResponse)
def accounts_page(
    request: Request,
    user: ConsoleUser,
    sessions: SessionsDep,
    message: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    with sessions() as session:
        context = _accounts_context(session, user)
    context["message"] = message
    return render(request, "accounts.html", context)


def _accounts_error(
    request: Request, sessions: Any, user: Any, exc: OceanMartError
) -> HTMLResponse:
    with sessions() as session:
        context = _accounts_context(session, user)
    context["error"] = exc.detail
    return render(request, "accounts.html", context, status=400)


def _to_accounts(message: str) -> RedirectResponse:
    return RedirectResponse("/console/accounts?" + urlencode({"message": message}), 303)


@router.post("/credits", response_class=HTMLResponse)
def grant_credits(
    request: Request, user: ConsoleUser, form: ConsoleForm, sessions: SessionsDep
) -> Response:
    try:
        money = from_major(form.get("amount", ""), form.get("currency", "CNY"))
        with transaction(sessions) as session:
            entry = credits.grant_credits(
                session, form.get("account", ""), money, created_by=user.account_name
            )
    except OceanMartError as exc:
        return _accounts_error(request, sessions, user, exc)
    t = translator(_lang(request))
    return _to_accounts(f"{t['granted']} {entry.amount.display()} → {entry.account}")


@router.post("/keys", response_class=HTMLResponse)
def create_key(
    request: Request, user: ConsoleUser, form: ConsoleForm, sessions: SessionsDep
) -> Response:
    try:
        with transaction(sessions) as session:
            _, raw = acc.create_key(
                session, form.get("account", ""), form.get("scopes", ""), label="console"
            )
    except OceanMartError as exc:
        return _accounts_error(request, sessions, user, exc)
    with sessions() as session:
        context = _accounts_context(session, user)
    context["new_key"] = raw  # shown once, in this response only (never in a URL)
    return render(request, "accounts.html", context)


@router.post("/keys/{key_id}/revoke", response_class=HTMLResponse)
def revoke_key(
    request: Request, key_id: str, user: ConsoleUser, form: ConsoleForm, sessions: SessionsDep
) -> Response:
    try:
        with transaction(sessions) as session:
            info = acc.revoke_key(session, key_id)
    except OceanMartError as exc:
        return _accounts_error(request, sessions, user, exc)
    t = translator(_lang(request))
    return _to_accounts(f"{t['revoked']}: {info.id}")


@router.post("/tier", response_class=HTMLResponse)
def tier(request: Request, user: ConsoleUser, form: ConsoleForm, sessions: SessionsDep) -> Response:
    try:
        with transaction(sessions) as session:
            account = acc.get_account(session, form.get("account", ""))
            set_tier(session, account, form.get("tier", "").strip()[:32] or None)
    except OceanMartError as exc:
        return _accounts_error(request, sessions, user, exc)
    t = translator(_lang(request))
    return _to_accounts(f"{t['tier_saved']}: {account.name}")
